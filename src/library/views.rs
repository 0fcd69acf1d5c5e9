//! The library as the app's screens ask for it: a filtered, ordered view of every image (each
//! ranked by its reward and the reward's percentile within the view), slim rows for the cells on
//! screen, and one image's full generation parameters on demand.
//!
//! A view is answered by one SQL statement over indexed columns, its rewards merged in from one
//! ordered pass over the model's scores, and held as 24 bytes per image (id, reward, percentile);
//! rows are fetched by id for what is on screen only, never by OFFSET.
//! Rewards come from the store's scores of one model, keyed by what the model saw of the prompt:
//! the image's own prompt by default, or one given prompt for a rerank.

use ahash::AHashMap;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};

use super::metadata::{GenerationParams, prompt_group_key};
use super::store::{Store, StoreError};
use crate::image_file::ContentHash;

/// Which images a view shows; every field narrows it, the default shows every present image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewFilter {
    /// Words the prompt contains (case-insensitive substring).
    pub text: Option<String>,
    /// One prompt group (its normalised key, as [`prompt_group_key`] makes it).
    pub prompt_group: Option<String>,
    /// Any of these checkpoints (by name).
    pub checkpoints: Vec<String>,
    /// Any of these generators (`"a1111"`, `"comfyui"`, …).
    pub generators: Vec<String>,
    /// Any of these samplers.
    pub samplers: Vec<String>,
    /// Any of these watched folders (by id).
    pub folders: Vec<i64>,
    /// Favorites only.
    pub favorites: bool,
    /// Everything but favorites (a cull keeps what the user marked).
    pub not_favorites: bool,
    /// Overall rating at least this (1..7).
    pub min_rating: Option<u8>,
    /// Overall rating at most this (1..7).
    pub max_rating: Option<u8>,
    /// Rated (`Some(true)`) or unrated (`Some(false)`) images only.
    pub rated: Option<bool>,
    /// Scored, unscored or failed images only.
    pub status: Option<ScoreStatus>,
    /// Reward at least this.
    pub min_score: Option<f64>,
    /// Reward at most this.
    pub max_score: Option<f64>,
    /// Modified at or after this Unix second.
    pub modified_from: Option<i64>,
    /// Modified before this Unix second.
    pub modified_before: Option<i64>,
    /// Also images whose file has gone missing.
    pub include_missing: bool,
}

/// Whether an image has a reward in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreStatus {
    /// It has a reward.
    Scored,
    /// It has none yet (and the file is readable).
    Unscored,
    /// Its file could not be read or decoded.
    Failed,
}

/// How a view is ordered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewOrder {
    /// Best reward against the image's own prompt first (the default); unscored last.
    #[default]
    Reward,
    /// Best reward against this prompt first (a rerank); unscored last.
    RewardFor(String),
    /// Newest file first.
    Date,
    /// By path (folder, then file name).
    Name,
    /// Highest overall rating first; unrated last.
    Rating,
    /// Most pixels first.
    Size,
}

/// A view: which images, in which order, with whose rewards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewQuery {
    /// Which images.
    pub filter: ViewFilter,
    /// In which order.
    pub order: ViewOrder,
    /// Reverse the order (unscored and unrated images stay last).
    pub reverse: bool,
    /// Rewards of this model; `None` shows none.
    pub model_id: Option<String>,
}

impl ViewQuery {
    /// The prompt rewards are shown against, when it is not each image's own.
    pub fn reward_prompt(&self) -> Option<&str> {
        match &self.order {
            ViewOrder::RewardFor(prompt) => Some(prompt),
            _ => None,
        }
    }
}

/// One image of a view: 24 bytes, so a 100,000-image view costs 2.4 MB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewEntry {
    /// The image's row id.
    pub image_id: i64,
    /// Its reward in this view, if scored.
    pub reward: Option<f32>,
    /// Percent of the view's scored images with a lower reward (best 100, worst 0).
    pub percentile: Option<f32>,
}

/// The answer to a [`ViewQuery`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// The images, in order.
    pub entries: Vec<ViewEntry>,
    /// How many of them have a reward.
    pub scored: usize,
}

/// How many of `len` images are the best (or worst) `percent` %: rounded up, never more than all.
pub fn share_of(len: usize, percent: f64) -> usize {
    ((len as f64 * percent.clamp(0.0, 100.0) / 100.0).ceil() as usize).min(len)
}

impl View {
    /// Number of images in the view.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a grid cell shows of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlimRow {
    /// Row id.
    pub image_id: i64,
    /// The file.
    pub path: std::path::PathBuf,
    /// Content hash, when the file was readable.
    pub content_hash: Option<ContentHash>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Its own prompt.
    pub prompt: Option<String>,
    /// Checkpoint name.
    pub checkpoint: Option<String>,
    /// Reward (against its own prompt, or the view's prompt).
    pub reward: Option<f64>,
    /// Overall rating 1..7.
    pub rating: Option<u8>,
    /// Whether it is a favorite.
    pub favorite: bool,
    /// Whether the model cut the prompt at 35 tokens (`None` until the model has read it).
    pub truncated: Option<bool>,
    /// Why the file is unusable, if it is.
    pub error: Option<String>,
    /// Whether the file is gone.
    pub missing: bool,
}

/// One image of a view as views, orders and groupings read it: its reward joined, the view's
/// reward conditions passed.
pub(super) struct ViewRow<T> {
    /// The image's row id.
    pub image_id: i64,
    /// Its prompt's interned id.
    pub prompt_id: Option<i64>,
    /// Its reward in the view.
    pub reward: Option<f64>,
    /// The extra columns the caller asked for.
    pub extra: T,
}

/// Where a view's rewards come from.
enum Rewards {
    /// Nowhere: no model, or a prompt the model has never read.
    None,
    /// The model's scores against each image's own prompt.
    OwnPrompt(String),
    /// The model's scores under one token key (the prompt of a rerank).
    Key(String, i64),
}

/// The view's conditions on the reward, checked once rewards are joined (no reward fails a bound).
struct RewardFilter {
    /// Scored (`true`) or unscored (`false`) only.
    scored: Option<bool>,
    /// Reward at least this.
    min: Option<f64>,
    /// Reward at most this.
    max: Option<f64>,
}

impl RewardFilter {
    /// Whether an image with this reward stays in the view.
    fn passes(&self, reward: Option<f64>) -> bool {
        self.scored.is_none_or(|scored| reward.is_some() == scored)
            && self.min.is_none_or(|min| reward.is_some_and(|r| r >= min))
            && self.max.is_none_or(|max| reward.is_some_and(|r| r <= max))
    }
}

/// A view planned: SQL for its images, where its rewards come from, and its reward conditions.
struct ViewPlan {
    sql: Sql,
    rewards: Rewards,
    reward_filter: RewardFilter,
}

/// A content hash as stored: 64 hex digits, compared byte by byte as SQLite orders them.
type HashText = [u8; 64];

/// Views at most this long look each reward up by a seek; so do views of less than an eighth of
/// the library (a seek costs about what reading eight scores in a pass does). Longer ones merge
/// in the model's scores in one ordered pass.
const SEEK_ROWS: usize = 1024;

/// Whether a view keeps most of the library (no filter that narrows it by much before rewards),
/// so reading all the model's scores in one pass beats looking each up.
fn broad(filter: &ViewFilter) -> bool {
    filter.text.is_none()
        && filter.prompt_group.is_none()
        && filter.checkpoints.is_empty()
        && filter.generators.is_empty()
        && filter.samplers.is_empty()
        && filter.folders.is_empty()
        && !filter.favorites
        && !filter.not_favorites
        && filter.min_rating.is_none()
        && filter.max_rating.is_none()
        && filter.rated.is_none()
}

/// The model's scores in content-hash order: one prompt's from `scores_by_model`; all of them
/// from the table itself, whose key starts with the hash (`+model_id` keeps the planner from
/// reading the index and sorting).
fn scores_statement<'c>(
    c: &'c rusqlite::Connection,
    model: &str,
    fixed_key: Option<i64>,
) -> rusqlite::Result<(rusqlite::CachedStatement<'c>, Vec<Value>)> {
    Ok(match fixed_key {
        Some(key) => (
            c.prepare_cached(
                "SELECT content_hash, token_key, value FROM scores WHERE model_id = ?1 AND token_key = ?2
                 ORDER BY content_hash",
            )?,
            vec![Value::Text(model.to_string()), Value::Integer(key)],
        ),
        None => (
            c.prepare_cached(
                "SELECT content_hash, token_key, value FROM scores WHERE +model_id = ?1 ORDER BY content_hash",
            )?,
            vec![Value::Text(model.to_string())],
        ),
    })
}

/// Reads the model's scores in content-hash order on a connection of its own (another thread).
fn model_scores(
    db: &std::path::Path,
    model: &str,
    fixed_key: Option<i64>,
) -> rusqlite::Result<Vec<(HashText, i64, f64)>> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(super::store::BUSY_TIMEOUT)?;
    conn.execute_batch(super::store::CACHE_PRAGMAS)?;
    read_scores(&conn, model, fixed_key)
}

/// The model's scores (one prompt's, or all of them) in content-hash order.
fn read_scores(
    c: &rusqlite::Connection,
    model: &str,
    fixed_key: Option<i64>,
) -> rusqlite::Result<Vec<(HashText, i64, f64)>> {
    let (mut stmt, args) = scores_statement(c, model, fixed_key)?;
    let mut found = stmt.query(params_from_iter(args))?;
    let mut scores = Vec::new();
    while let Some(r) = found.next()? {
        if let Some(hash) = hash_text(r.get_ref(0)?) {
            scores.push((hash, r.get(1)?, r.get(2)?));
        }
    }
    Ok(scores)
}

/// A stored content hash, if the value is one.
fn hash_text(value: ValueRef<'_>) -> Option<HashText> {
    let ValueRef::Text(text) = value else { return None };
    text.try_into().ok()
}

/// A reward as a sort key: best first (worst first when `reverse`) in `f64::total_cmp`'s order,
/// no reward last; [`reward_of_key`] gives the reward back.
fn reward_key(reward: Option<f64>, reverse: bool) -> u64 {
    let Some(value) = reward else { return NO_REWARD_KEY };
    let bits = value.to_bits();
    // Flip so that unsigned order is numeric order: negatives reversed, below positives.
    let ordered = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    // The one reward that would land on the last key (a NaN) goes just before it.
    (if reverse { ordered } else { !ordered }).min(NO_REWARD_KEY - 1)
}

/// The sort key of an image without a reward: after every reward.
const NO_REWARD_KEY: u64 = u64::MAX;

/// The reward a [`reward_key`] was made from.
fn reward_of_key(key: u64, reverse: bool) -> Option<f64> {
    if key == NO_REWARD_KEY {
        return None;
    }
    let ordered = if reverse { key } else { !key };
    let bits = if ordered >> 63 == 1 { ordered & !(1 << 63) } else { !ordered };
    Some(f64::from_bits(bits))
}

/// Rewards compared as SQL orders them: no reward below any reward.
pub(super) fn cmp_reward(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

/// SQL pieces of a view being built: joins, conditions and their parameters.
struct Sql {
    joins: String,
    conditions: Vec<String>,
    args: Vec<Value>,
}

impl Sql {
    /// Appends a parameter and returns its placeholder.
    fn arg(&mut self, value: Value) -> String {
        self.args.push(value);
        format!("?{}", self.args.len())
    }

    /// `column IN (…)` over text values, or nothing for an empty list.
    fn any_of(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let marks: Vec<String> = values.iter().map(|v| self.arg(Value::Text(v.clone()))).collect();
        self.conditions.push(format!("{column} IN ({})", marks.join(", ")));
    }
}

/// LIKE pattern for a substring, with LIKE's wildcards escaped.
fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl Store {
    /// The token key `model_id` reads `prompt` as, if the model has read it or a prompt that
    /// differs only in case and spacing.
    pub fn prompt_tokens_key(&self, model_id: &str, prompt: &str) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            let exact = c
                .prepare_cached(
                    "SELECT t.token_key FROM prompts p JOIN prompt_tokens t ON t.prompt_id = p.id AND t.model_id = ?1
                     WHERE p.text = ?2",
                )?
                .query_row(params![model_id, prompt], |r| r.get(0))
                .optional()?;
            if exact.is_some() {
                return Ok(exact);
            }
            c.prepare_cached(
                "SELECT t.token_key FROM prompts p JOIN prompt_tokens t ON t.prompt_id = p.id AND t.model_id = ?1
                 WHERE p.group_key = ?2 LIMIT 1",
            )?
            .query_row(params![model_id, prompt_group_key(prompt)], |r| r.get(0))
            .optional()
        })
    }

    /// The view's SQL (every condition but the reward's), where its rewards come from, and its
    /// reward conditions.
    fn view_plan(&self, query: &ViewQuery) -> Result<ViewPlan, StoreError> {
        let mut sql = Sql { joins: String::new(), conditions: Vec::new(), args: Vec::new() };
        let rewards = match (&query.model_id, query.reward_prompt()) {
            (None, _) => Rewards::None,
            (Some(model), None) => Rewards::OwnPrompt(model.clone()),
            (Some(model), Some(prompt)) => match self.prompt_tokens_key(model, prompt)? {
                Some(key) => Rewards::Key(model.clone(), key),
                // The model has never read this prompt: nothing is scored against it yet.
                None => Rewards::None,
            },
        };
        let f = &query.filter;
        let needs_rating = f.min_rating.is_some()
            || f.max_rating.is_some()
            || f.rated.is_some()
            || matches!(query.order, ViewOrder::Rating);
        if needs_rating {
            sql.joins.push_str(" LEFT JOIN ratings r ON r.content_hash = i.content_hash");
        }
        if !f.include_missing {
            sql.conditions.push("i.missing = 0".into());
        }
        if let Some(text) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let p = sql.arg(Value::Text(like_pattern(text)));
            sql.conditions.push(format!("i.prompt_id IN (SELECT id FROM prompts WHERE text LIKE {p} ESCAPE '\\')"));
        }
        if let Some(group) = &f.prompt_group {
            let p = sql.arg(Value::Text(group.clone()));
            sql.conditions.push(format!("i.prompt_id IN (SELECT id FROM prompts WHERE group_key = {p})"));
        }
        sql.any_of("i.checkpoint", &f.checkpoints);
        sql.any_of("i.generator", &f.generators);
        sql.any_of("i.sampler", &f.samplers);
        if !f.folders.is_empty() {
            let marks: Vec<String> = f.folders.iter().map(|id| sql.arg(Value::Integer(*id))).collect();
            sql.conditions.push(format!("i.folder_id IN ({})", marks.join(", ")));
        }
        if f.favorites {
            sql.conditions.push("EXISTS (SELECT 1 FROM favorites v WHERE v.content_hash = i.content_hash)".into());
        }
        if f.not_favorites {
            sql.conditions.push("NOT EXISTS (SELECT 1 FROM favorites v WHERE v.content_hash = i.content_hash)".into());
        }
        if let Some(min) = f.min_rating {
            let p = sql.arg(Value::Integer(i64::from(min)));
            sql.conditions.push(format!("r.overall >= {p}"));
        }
        if let Some(max) = f.max_rating {
            let p = sql.arg(Value::Integer(i64::from(max)));
            sql.conditions.push(format!("r.overall <= {p}"));
        }
        match f.rated {
            Some(true) => sql.conditions.push("r.overall IS NOT NULL".into()),
            Some(false) => sql.conditions.push("r.overall IS NULL".into()),
            None => {}
        }
        let mut reward_filter = RewardFilter { scored: None, min: f.min_score, max: f.max_score };
        match f.status {
            Some(ScoreStatus::Scored) => reward_filter.scored = Some(true),
            Some(ScoreStatus::Unscored) => {
                reward_filter.scored = Some(false);
                sql.conditions.push("i.error IS NULL".into());
            }
            Some(ScoreStatus::Failed) => sql.conditions.push("i.error IS NOT NULL".into()),
            None => {}
        }
        if let Some(from) = f.modified_from {
            let p = sql.arg(Value::Integer(from.saturating_mul(1_000_000_000)));
            sql.conditions.push(format!("i.mtime_ns >= {p}"));
        }
        if let Some(before) = f.modified_before {
            let p = sql.arg(Value::Integer(before.saturating_mul(1_000_000_000)));
            sql.conditions.push(format!("i.mtime_ns < {p}"));
        }
        Ok(ViewPlan { sql, rewards, reward_filter })
    }

    /// Every image of the view with its reward (the view's reward conditions passed) and the
    /// `columns` the caller reads with `read_extra` (from column 3 on), in content-hash order:
    /// what views and groups are made from.
    ///
    /// The images come from one statement over `images` (a covering index for the common filters)
    /// and rewards are merged in from one pass over the model's scores in the same order, rather
    /// than two B-tree seeks per image in SQL: that is what keeps a 100,000-image view in tens of ms.
    pub(super) fn view_rows<T: Send>(
        &self,
        query: &ViewQuery,
        columns: &str,
        mut read_extra: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<ViewRow<T>>, StoreError> {
        let ViewPlan { sql, rewards, reward_filter } = self.view_plan(query)?;
        let conditions =
            if sql.conditions.is_empty() { String::new() } else { format!(" WHERE {}", sql.conditions.join(" AND ")) };
        let text = format!(
            "SELECT i.id, i.prompt_id, i.content_hash{columns} FROM images i{}{conditions} ORDER BY i.content_hash",
            sql.joins
        );
        let mut scan_images = |hashes: &mut Vec<Option<HashText>>| {
            self.read(|c| {
                let mut stmt = c.prepare_cached(&text)?;
                let mut found = stmt.query(params_from_iter(&sql.args))?;
                let mut rows = Vec::new();
                while let Some(r) = found.next()? {
                    hashes.push(hash_text(r.get_ref(2)?));
                    rows.push(ViewRow {
                        image_id: r.get(0)?,
                        prompt_id: r.get(1)?,
                        reward: None,
                        extra: read_extra(r)?,
                    });
                }
                Ok(rows)
            })
        };
        let mut hashes: Vec<Option<HashText>> = Vec::new();
        // A view of most of the library reads the model's scores on the other core, on its own
        // connection, while this one reads the images: the two ordered passes overlap.
        let mut rows = match (&rewards, broad(&query.filter)) {
            (Rewards::OwnPrompt(model) | Rewards::Key(model, _), true) => {
                let fixed_key = match &rewards {
                    Rewards::Key(_, key) => Some(*key),
                    _ => None,
                };
                let path = self.path().to_path_buf();
                std::thread::scope(|scope| -> Result<Vec<ViewRow<T>>, StoreError> {
                    let scores = std::thread::Builder::new()
                        .name("rewardlens-view-scores".to_string())
                        .spawn_scoped(scope, || model_scores(&path, model, fixed_key))
                        .map_err(|e| StoreError::Sqlite {
                            path: path.clone(),
                            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
                        })?;
                    let mut rows = scan_images(&mut hashes)?;
                    let scores = match scores.join() {
                        Ok(scores) => scores.map_err(|source| StoreError::Sqlite { path: path.clone(), source })?,
                        Err(_) => Vec::new(),
                    };
                    self.merge_rewards(&rewards, &mut rows, &hashes, scores)?;
                    Ok(rows)
                })?
            }
            _ => {
                let mut rows = scan_images(&mut hashes)?;
                self.join_rewards(&rewards, &mut rows, &hashes)?;
                rows
            }
        };
        rows.retain(|row| reward_filter.passes(row.reward));
        Ok(rows)
    }

    /// What the model read of each of its prompts: prompt id → token key.
    fn prompt_keys(&self, model: &str) -> Result<AHashMap<i64, i64>, StoreError> {
        self.read(|c| {
            let mut prompt_keys: AHashMap<i64, i64> = AHashMap::new();
            let mut stmt = c.prepare_cached("SELECT prompt_id, token_key FROM prompt_tokens WHERE model_id = ?1")?;
            let mut found = stmt.query([model])?;
            while let Some(r) = found.next()? {
                prompt_keys.insert(r.get(0)?, r.get(1)?);
            }
            Ok(prompt_keys)
        })
    }

    /// Fills each row's reward (rows in content-hash order): a seek per image for a small view,
    /// else a merge with one ordered pass over the model's scores.
    fn join_rewards<T>(
        &self,
        rewards: &Rewards,
        rows: &mut [ViewRow<T>],
        hashes: &[Option<HashText>],
    ) -> Result<(), StoreError> {
        let (model, fixed_key) = match rewards {
            Rewards::None => return Ok(()),
            Rewards::OwnPrompt(model) => (model.as_str(), None),
            Rewards::Key(model, key) => (model.as_str(), Some(*key)),
        };
        let library: i64 = self.read(|c| c.query_row("SELECT COALESCE(MAX(id), 0) FROM images", [], |r| r.get(0)))?;
        // Row ids only grow: the largest is about the library's size, and found at once.
        let library = usize::try_from(library).unwrap_or(usize::MAX);
        if rows.len() > SEEK_ROWS.max(library / 8) {
            let scores = self.read(|c| read_scores(c, model, fixed_key))?;
            return self.merge_rewards(rewards, rows, hashes, scores);
        }
        let prompt_keys = if fixed_key.is_none() { self.prompt_keys(model)? } else { AHashMap::new() };
        let key_of = |prompt_id: Option<i64>| fixed_key.or_else(|| prompt_keys.get(&prompt_id?).copied());
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT value FROM scores WHERE content_hash = ?1 AND model_id = ?2 AND token_key = ?3",
            )?;
            for (row, hash) in rows.iter_mut().zip(hashes) {
                let (Some(hash), Some(key)) = (hash, key_of(row.prompt_id)) else { continue };
                let hash = std::str::from_utf8(hash).unwrap_or_default();
                row.reward = stmt.query_row(params![hash, model, key], |r| r.get(0)).optional()?;
            }
            Ok(())
        })
    }

    /// Merges the model's scores, in content-hash order, into rows in the same order.
    fn merge_rewards<T>(
        &self,
        rewards: &Rewards,
        rows: &mut [ViewRow<T>],
        hashes: &[Option<HashText>],
        scores: Vec<(HashText, i64, f64)>,
    ) -> Result<(), StoreError> {
        let (model, fixed_key) = match rewards {
            Rewards::None => return Ok(()),
            Rewards::OwnPrompt(model) => (model.as_str(), None),
            Rewards::Key(model, key) => (model.as_str(), Some(*key)),
        };
        let prompt_keys = if fixed_key.is_none() { self.prompt_keys(model)? } else { AHashMap::new() };
        let key_of = |prompt_id: Option<i64>| fixed_key.or_else(|| prompt_keys.get(&prompt_id?).copied());
        let mut scores = scores.into_iter();
        let mut ahead = scores.next();
        // The scores of the hash last met: (token key, value), several when it was reranked.
        let mut run_hash: Option<HashText> = None;
        let mut run: Vec<(i64, f64)> = Vec::new();
        for (row, hash) in rows.iter_mut().zip(hashes) {
            let Some(hash) = hash else { continue };
            if run_hash.as_ref() != Some(hash) {
                run.clear();
                run_hash = Some(*hash);
                while let Some((score_hash, key, value)) = ahead {
                    match score_hash.cmp(hash) {
                        std::cmp::Ordering::Less => {}
                        std::cmp::Ordering::Equal => run.push((key, value)),
                        std::cmp::Ordering::Greater => break,
                    }
                    ahead = scores.next();
                }
            }
            let Some(key) = key_of(row.prompt_id) else { continue };
            row.reward = run.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        }
        Ok(())
    }

    /// Answers a view: every matching image in order, with its reward and percentile.
    pub fn view(&self, query: &ViewQuery) -> Result<View, StoreError> {
        let reverse = query.reverse;
        // Each order sorts on a small key; ties go to the lower id, as they always have.
        let down = |o: std::cmp::Ordering| if reverse { o } else { o.reverse() };
        let mut entries = match query.order {
            ViewOrder::Reward | ViewOrder::RewardFor(_) => {
                // Scored first, best first (worst first reversed): sorted as 16-byte keys that
                // hold the reward exactly.
                let mut keys: Vec<(u64, i64)> = self
                    .view_rows(query, "", |_| Ok(()))?
                    .iter()
                    .map(|r| (reward_key(r.reward, reverse), r.image_id))
                    .collect();
                keys.sort_unstable();
                let mut entries = Vec::with_capacity(keys.len());
                entries.extend(keys.iter().map(|&(key, image_id)| ViewEntry {
                    image_id,
                    reward: reward_of_key(key, reverse).map(|v| v as f32),
                    percentile: None,
                }));
                entries
            }
            ViewOrder::Date => {
                let mut rows = self.view_rows(query, ", i.mtime_ns", |r| r.get::<_, i64>(3))?;
                rows.sort_unstable_by(|a, b| down(a.extra.cmp(&b.extra)).then(a.image_id.cmp(&b.image_id)));
                view_entries(&rows)
            }
            ViewOrder::Name => {
                let mut rows = self.view_rows(query, ", i.path", |r| r.get::<_, String>(3))?;
                rows.sort_unstable_by(|a, b| down(b.extra.cmp(&a.extra)).then(a.image_id.cmp(&b.image_id)));
                view_entries(&rows)
            }
            ViewOrder::Size => {
                let mut rows = self.view_rows(query, ", COALESCE(i.width * i.height, 0), i.size", |r| {
                    Ok((r.get::<_, i64>(3)?, r.get::<_, i64>(4)?))
                })?;
                rows.sort_unstable_by(|a, b| down(a.extra.cmp(&b.extra)).then(a.image_id.cmp(&b.image_id)));
                view_entries(&rows)
            }
            ViewOrder::Rating => {
                let mut rows = self.view_rows(query, ", r.overall", |r| r.get::<_, Option<i64>>(3))?;
                // Rated first, best rating first, then best reward (no reward below any, as SQL).
                rows.sort_unstable_by(|a, b| {
                    a.extra
                        .is_none()
                        .cmp(&b.extra.is_none())
                        .then(down(a.extra.cmp(&b.extra)))
                        .then(down(cmp_reward(a.reward, b.reward)))
                        .then(a.image_id.cmp(&b.image_id))
                });
                view_entries(&rows)
            }
        };
        let scored = fill_percentiles(&mut entries);
        Ok(View { entries, scored })
    }

    /// The cells' rows for these image ids, in the same order (ids not found are left out); the
    /// reward is the one `query` shows.
    pub fn slim_rows(&self, ids: &[i64], query: &ViewQuery) -> Result<Vec<SlimRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<Value> = Vec::new();
        let model = query.model_id.clone();
        let key = match (&model, query.reward_prompt()) {
            (Some(m), Some(p)) => self.prompt_tokens_key(m, p)?,
            _ => None,
        };
        args.push(model.map_or(Value::Null, Value::Text));
        args.push(key.map_or(Value::Null, Value::Integer));
        let reward_key = if query.reward_prompt().is_some() { "?2" } else { "t.token_key" };
        let marks: Vec<String> = ids
            .iter()
            .map(|id| {
                args.push(Value::Integer(*id));
                format!("?{}", args.len())
            })
            .collect();
        let text = format!(
            "SELECT i.id, i.path, i.content_hash, i.width, i.height, i.prompt, i.checkpoint, s.value, r.overall,
                    EXISTS (SELECT 1 FROM favorites v WHERE v.content_hash = i.content_hash), t.truncated,
                    i.error, i.missing
             FROM images i
             LEFT JOIN prompt_tokens t ON t.model_id = ?1 AND t.prompt_id = i.prompt_id
             LEFT JOIN scores s ON s.content_hash = i.content_hash AND s.model_id = ?1 AND s.token_key = {reward_key}
             LEFT JOIN ratings r ON r.content_hash = i.content_hash
             WHERE i.id IN ({})",
            marks.join(", ")
        );
        let mut rows: std::collections::HashMap<i64, SlimRow> = self.read(|c| {
            let mut stmt = c.prepare(&text)?;
            let rows = stmt.query_map(params_from_iter(args), |r| {
                Ok(SlimRow {
                    image_id: r.get(0)?,
                    path: super::store::path_from_text(&r.get::<_, String>(1)?),
                    content_hash: r.get(2)?,
                    width: r.get(3)?,
                    height: r.get(4)?,
                    prompt: r.get(5)?,
                    checkpoint: r.get(6)?,
                    reward: r.get(7)?,
                    rating: r.get(8)?,
                    favorite: r.get(9)?,
                    truncated: r.get(10)?,
                    error: r.get(11)?,
                    missing: r.get(12)?,
                })
            })?;
            rows.map(|row| row.map(|row| (row.image_id, row))).collect()
        })?;
        Ok(ids.iter().filter_map(|id| rows.remove(id)).collect())
    }

    /// One image's full generation parameters (for the viewer's info panel), if it has any.
    pub fn image_params(&self, image_id: i64) -> Result<Option<GenerationParams>, StoreError> {
        let json: Option<Option<String>> = self.read(|c| {
            c.query_row("SELECT params_json FROM images WHERE id = ?1", [image_id], |r| r.get(0)).optional()
        })?;
        Ok(json.flatten().and_then(|j| serde_json::from_str(&j).ok()))
    }
}

/// The view's entries, exactly as many as rows: a view is held as long as it is shown.
fn view_entries<T>(rows: &[ViewRow<T>]) -> Vec<ViewEntry> {
    let mut entries = Vec::with_capacity(rows.len());
    entries.extend(rows.iter().map(|row| ViewEntry {
        image_id: row.image_id,
        reward: row.reward.map(|v| v as f32),
        percentile: None,
    }));
    entries
}

/// One image of a view as the scoring worker needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewItem {
    /// Row id.
    pub image_id: i64,
    /// The file.
    pub path: std::path::PathBuf,
    /// Content hash, when the file was readable.
    pub content_hash: Option<ContentHash>,
    /// Its own prompt.
    pub prompt: Option<String>,
}

/// Ids fetched per statement when a view's items are read.
const ITEMS_PER_QUERY: usize = 500;

impl Store {
    /// A view's images in order with their path, content hash and own prompt: what the scoring
    /// worker enumerates to score a view (the caller never builds the list).
    pub fn view_items(&self, query: &ViewQuery) -> Result<Vec<ViewItem>, StoreError> {
        let view = self.view(query)?;
        let ids: Vec<i64> = view.entries.iter().map(|e| e.image_id).collect();
        let mut found: std::collections::HashMap<i64, ViewItem> = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ITEMS_PER_QUERY) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let text = format!("SELECT id, path, content_hash, prompt FROM images WHERE id IN ({marks})");
            self.read(|c| {
                let mut stmt = c.prepare_cached(&text)?;
                let rows = stmt.query_map(params_from_iter(chunk), |r| {
                    Ok(ViewItem {
                        image_id: r.get(0)?,
                        path: super::store::path_from_text(&r.get::<_, String>(1)?),
                        content_hash: r.get(2)?,
                        prompt: r.get(3)?,
                    })
                })?;
                for row in rows {
                    let row = row?;
                    found.insert(row.image_id, row);
                }
                Ok(())
            })?;
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}

/// Sets each scored entry's percentile within the view; returns how many are scored.
fn fill_percentiles(entries: &mut [ViewEntry]) -> usize {
    let mut values: Vec<f32> = entries.iter().filter_map(|e| e.reward).collect();
    // A view by reward is sorted already (best first): then the sort below costs one pass.
    values.sort_by(f32::total_cmp);
    let n = values.len();
    let percentile = |below: usize| if n > 1 { 100.0 * below as f32 / (n - 1) as f32 } else { 100.0 };
    // Walking down from the best, `below` only shrinks: no search per entry.
    let mut previous: Option<f32> = None;
    let sorted_down = entries.iter().filter_map(|e| e.reward).all(|v| {
        let down = previous.is_none_or(|p| p.total_cmp(&v).is_ge());
        previous = Some(v);
        down
    });
    let mut below = n;
    for entry in entries.iter_mut() {
        if let Some(v) = entry.reward {
            below = if sorted_down {
                while below > 0 && values[below - 1].total_cmp(&v).is_ge() {
                    below -= 1;
                }
                below
            } else {
                values.partition_point(|x| x.total_cmp(&v).is_lt())
            };
            entry.percentile = Some(percentile(below));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;

    use crate::library::store::{ImageRecord, Rating, ScoreRow};
    use crate::model::PromptTokenizer;

    /// The model whose rewards the views show.
    const MODEL: &str = "m";
    /// A prompt the library was reranked against; no image has it as its own.
    const RERANK: &str = "a watercolor of a fox";
    /// Longer than the 35 tokens the model reads.
    const LONG: &str = "an extremely detailed matte painting of a sprawling futuristic city at dusk, with flying \
         cars, neon signs in many languages, rain slicked streets reflecting the lights, crowds of people holding \
         umbrellas, towering skyscrapers";
    /// Own prompts, in turn: case and spacing variants of one prompt, LIKE's wildcards, a long
    /// prompt and no prompt at all.
    const PROMPTS: [Option<&str>; 9] = [
        Some("a red fox in the snow"),
        Some("A Red Fox in the SNOW"),
        Some("a red  fox in the snow "),
        Some("a castle at dusk"),
        Some("A CASTLE AT DUSK"),
        Some("portrait of a cat, oil painting"),
        Some(LONG),
        Some("100% pure_water"),
        None,
    ];

    /// One test image and everything a brute-force view needs to know of it.
    #[derive(Debug, Clone)]
    struct Img {
        id: i64,
        path: PathBuf,
        hash: Option<ContentHash>,
        prompt: Option<&'static str>,
        checkpoint: &'static str,
        sampler: &'static str,
        generator: &'static str,
        folder: i64,
        missing: bool,
        error: bool,
        rating: Option<u8>,
        favorite: bool,
        /// Model `m`'s reward against its own prompt.
        reward: Option<f64>,
        /// Model `m`'s reward against [`RERANK`].
        rerank: Option<f64>,
        mtime_ns: i64,
        pixels: i64,
        size: i64,
    }

    /// A library of `n` images built through the store API; the last image is a copy of the one
    /// before it (same content: same scores, rating and favorite). Returns the folder ids too.
    fn library(n: usize) -> (tempfile::TempDir, Store, Vec<Img>, [i64; 2]) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let folders =
            [store.add_folder(&dir.path().join("f1")).unwrap(), store.add_folder(&dir.path().join("f2")).unwrap()];
        let value = |s: usize| ((s * 37) % 61) as f64 / 8.0 - 3.0;
        let mut imgs = Vec::new();
        for i in 0..n {
            let source = if i + 1 == n && i > 0 { i - 1 } else { i };
            let prompt = PROMPTS[source % PROMPTS.len()];
            let error = source % 17 == 5;
            let hash = (!error).then(|| ContentHash::of(format!("image {source}").as_bytes()));
            let scored = !error && prompt.is_some() && source % 7 != 2;
            // Every tenth image ties with the one before it.
            let reward = scored.then(|| if source % 10 == 9 { value(source - 1) } else { value(source) });
            let (width, height) = if i % 4 == 0 { (None, None) } else { (Some(64 + (i % 5) as u32 * 8), Some(64)) };
            imgs.push(Img {
                id: 0,
                path: dir.path().join(if i % 2 == 0 { "f1" } else { "f2" }).join(format!("img_{i:04}.png")),
                hash,
                prompt,
                checkpoint: ["ckA", "ckB", "ckC"][i % 3],
                sampler: ["Euler a", "DDIM"][i % 2],
                generator: ["a1111", "comfyui"][i % 5 % 2],
                folder: folders[i % 2],
                missing: i % 19 == 3,
                error,
                rating: (!error && source % 5 == 0).then_some((source % 7) as u8 + 1),
                favorite: !error && source % 6 == 1,
                reward,
                rerank: (!error && source % 3 == 0).then(|| ((source * 13) % 29) as f64 / 4.0 - 2.0),
                mtime_ns: ((i * 7919) % 1000) as i64 * 1_000_000_000,
                pixels: width.zip(height).map_or(0, |(w, h)| i64::from(w) * i64::from(h)),
                size: 1000 + ((i * 31) % 97) as i64,
            });
        }
        let records: Vec<ImageRecord> = imgs
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let params = GenerationParams {
                    generator: Some(img.generator.to_string()),
                    prompt: img.prompt.map(str::to_string),
                    model: Some(img.checkpoint.to_string()),
                    seed: Some(i as i64),
                    ..GenerationParams::default()
                };
                let pixels = (img.pixels > 0).then(|| (64 + (i % 5) as u32 * 8, 64));
                ImageRecord {
                    folder_id: Some(img.folder),
                    path: img.path.clone(),
                    content_hash: img.hash.clone(),
                    size: img.size as u64,
                    mtime_ns: img.mtime_ns,
                    width: pixels.map(|p| p.0),
                    height: pixels.map(|p| p.1),
                    format: Some("png".into()),
                    generator: Some(img.generator.into()),
                    prompt: img.prompt.map(str::to_string),
                    params_json: Some(serde_json::to_string(&params).unwrap()),
                    prompt_key: img.prompt.map(prompt_group_key),
                    error: img.error.then(|| "truncated".to_string()),
                    checkpoint: Some(img.checkpoint.into()),
                    checkpoint_hash: Some(format!("{}-hash", img.checkpoint)),
                    sampler: Some(img.sampler.into()),
                    seed: Some(i as i64),
                    ..ImageRecord::default()
                }
            })
            .collect();
        for (img, id) in imgs.iter_mut().zip(store.upsert_images(&records).unwrap()) {
            img.id = id;
            if img.missing {
                assert!(store.mark_missing(&img.path).unwrap());
            }
        }
        let tokenizer = PromptTokenizer::bundled().unwrap();
        let tokens = |prompt: &str| {
            let t = tokenizer.encode(prompt).unwrap();
            (t.key(), t.truncated)
        };
        let texts: Vec<&str> = PROMPTS.iter().flatten().copied().collect();
        let token_rows: Vec<(&str, _, bool)> = texts.iter().map(|p| (*p, tokens(p).0, tokens(p).1)).collect();
        store.record_prompt_tokens(MODEL, &token_rows).unwrap();
        let mut own = Vec::new();
        let mut rerank = Vec::new();
        let mut other = Vec::new();
        for img in &imgs {
            let Some(hash) = &img.hash else { continue };
            if let (Some(prompt), Some(value)) = (img.prompt, img.reward) {
                let (tokens, truncated) = tokens(prompt);
                own.push(ScoreRow { content_hash: hash, prompt, tokens, truncated, value });
                // Another model's scores, which no view of `m` may show.
                other.push(ScoreRow { content_hash: hash, prompt, tokens, truncated, value: 100.0 - value });
            }
            if let Some(value) = img.rerank {
                let (tokens, truncated) = tokens(RERANK);
                rerank.push(ScoreRow { content_hash: hash, prompt: RERANK, tokens, truncated, value });
            }
            if let Some(overall) = img.rating {
                store.set_rating(hash, Rating { overall: Some(overall), ..Rating::default() }).unwrap();
            }
            if img.favorite {
                store.add_favorite(hash).unwrap();
            }
        }
        store.record_scores(MODEL, &own).unwrap();
        store.record_scores(MODEL, &rerank).unwrap();
        store.record_scores("other", &other).unwrap();
        (dir, store, imgs, folders)
    }

    /// The view a brute force makes of `imgs`: those `keep` passes, scored first by `reward`
    /// (best first, worst first when `reverse`), then by id; each with its percentile.
    fn brute_force(
        imgs: &[Img],
        keep: impl Fn(&Img) -> bool,
        reward: impl Fn(&Img) -> Option<f64>,
        reverse: bool,
    ) -> Vec<(i64, Option<f32>, Option<f32>)> {
        let mut rows: Vec<(i64, Option<f64>)> = imgs.iter().filter(|i| keep(i)).map(|i| (i.id, reward(i))).collect();
        rows.sort_by(|a, b| match (a.1, b.1) {
            (Some(x), Some(y)) => (if reverse { x.total_cmp(&y) } else { y.total_cmp(&x) }).then(a.0.cmp(&b.0)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.0.cmp(&b.0),
        });
        let values: Vec<f32> = rows.iter().filter_map(|r| r.1.map(|v| v as f32)).collect();
        let n = values.len();
        rows.into_iter()
            .map(|(id, r)| {
                let r = r.map(|v| v as f32);
                let pct = r.map(|v| {
                    let below = values.iter().filter(|x| **x < v).count();
                    if n > 1 { 100.0 * below as f32 / (n - 1) as f32 } else { 100.0 }
                });
                (id, r, pct)
            })
            .collect()
    }

    /// The view as (id, reward, percentile) rows.
    fn answer(store: &Store, query: &ViewQuery) -> Vec<(i64, Option<f32>, Option<f32>)> {
        let view = store.view(query).unwrap();
        assert_eq!(view.scored, view.entries.iter().filter(|e| e.reward.is_some()).count());
        view.entries.iter().map(|e| (e.image_id, e.reward, e.percentile)).collect()
    }

    fn assert_same(got: &[(i64, Option<f32>, Option<f32>)], want: &[(i64, Option<f32>, Option<f32>)], what: &str) {
        let ids = |rows: &[(i64, Option<f32>, Option<f32>)]| rows.iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(ids(got), ids(want), "{what}: ids");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.1, w.1, "{what}: reward of {}", g.0);
            match (g.2, w.2) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-3, "{what}: percentile of {}: {a} vs {b}", g.0),
                (a, b) => assert_eq!(a, b, "{what}: percentile of {}", g.0),
            }
        }
    }

    fn own_view(filter: ViewFilter) -> ViewQuery {
        ViewQuery { filter, model_id: Some(MODEL.to_string()), ..ViewQuery::default() }
    }

    /// Every filter and order against a brute force, on a library small enough for per-image
    /// seeks and on one large enough for the merge over the model's scores.
    #[test]
    fn views_equal_a_brute_force_of_the_same_rows_for_every_filter_and_order() {
        for n in [60, 1300] {
            let (_dir, store, imgs, folders) = library(n);
            let present = |i: &Img| !i.missing;
            let own = |i: &Img| i.reward;
            let check = |filter: ViewFilter, keep: &dyn Fn(&Img) -> bool, what: &str| {
                let want = brute_force(&imgs, |i| present(i) && keep(i), own, false);
                assert_same(&answer(&store, &own_view(filter)), &want, &format!("{n} images, {what}"));
            };
            check(ViewFilter::default(), &|_| true, "default");
            assert!(imgs.iter().any(|i| i.missing && i.reward.is_some()), "a missing scored image is hidden");
            let text = |t: &str| ViewFilter { text: Some(t.into()), ..ViewFilter::default() };
            check(text("CASTLE"), &|i| i.prompt.is_some_and(|p| p.to_lowercase().contains("castle")), "search");
            check(text("100%"), &|i| i.prompt == Some("100% pure_water"), "search with %");
            check(text("_"), &|i| i.prompt == Some("100% pure_water"), "search with _");
            check(
                ViewFilter { prompt_group: Some("a red fox in the snow".into()), ..ViewFilter::default() },
                &|i| i.prompt.is_some_and(|p| prompt_group_key(p) == "a red fox in the snow"),
                "prompt group",
            );
            check(
                ViewFilter { checkpoints: vec!["ckA".into(), "ckC".into()], ..ViewFilter::default() },
                &|i| i.checkpoint != "ckB",
                "checkpoints",
            );
            check(
                ViewFilter {
                    samplers: vec!["DDIM".into()],
                    generators: vec!["comfyui".into()],
                    ..ViewFilter::default()
                },
                &|i| i.sampler == "DDIM" && i.generator == "comfyui",
                "sampler and generator",
            );
            check(ViewFilter { favorites: true, ..ViewFilter::default() }, &|i| i.favorite, "favorites");
            check(ViewFilter { not_favorites: true, ..ViewFilter::default() }, &|i| !i.favorite, "not favorites");
            check(
                ViewFilter { min_rating: Some(3), max_rating: Some(5), ..ViewFilter::default() },
                &|i| i.rating.is_some_and(|r| (3..=5).contains(&r)),
                "rating range",
            );
            check(ViewFilter { rated: Some(false), ..ViewFilter::default() }, &|i| i.rating.is_none(), "unrated");
            check(
                ViewFilter { status: Some(ScoreStatus::Scored), ..ViewFilter::default() },
                &|i| i.reward.is_some(),
                "scored",
            );
            check(
                ViewFilter { status: Some(ScoreStatus::Unscored), ..ViewFilter::default() },
                &|i| i.reward.is_none() && !i.error,
                "unscored",
            );
            check(ViewFilter { status: Some(ScoreStatus::Failed), ..ViewFilter::default() }, &|i| i.error, "failed");
            check(
                ViewFilter { min_score: Some(-1.0), max_score: Some(2.0), ..ViewFilter::default() },
                &|i| i.reward.is_some_and(|r| (-1.0..=2.0).contains(&r)),
                "score range",
            );
            check(
                ViewFilter { folders: vec![folders[1]], ..ViewFilter::default() },
                &|i| i.folder == folders[1],
                "folder",
            );
            let all = brute_force(&imgs, |_| true, own, false);
            let with_missing = own_view(ViewFilter { include_missing: true, ..ViewFilter::default() });
            assert_same(&answer(&store, &with_missing), &all, &format!("{n} images, missing shown when asked"));

            // Worst first, unscored still last.
            let reversed = ViewQuery { reverse: true, ..own_view(ViewFilter::default()) };
            assert_same(&answer(&store, &reversed), &brute_force(&imgs, present, own, true), "reversed");

            // A rerank: found under a case and spacing variant the model never read as such.
            let rerank = ViewQuery {
                order: ViewOrder::RewardFor("  A WATERCOLOR of a  fox".into()),
                ..own_view(ViewFilter::default())
            };
            assert_same(&answer(&store, &rerank), &brute_force(&imgs, present, |i| i.rerank, false), "rerank");
            let never = ViewQuery {
                order: ViewOrder::RewardFor("a prompt nobody scored".into()),
                ..own_view(ViewFilter::default())
            };
            assert_same(&answer(&store, &never), &brute_force(&imgs, present, |_| None, false), "unread prompt");
            let no_model = ViewQuery { model_id: None, ..own_view(ViewFilter::default()) };
            assert_same(&answer(&store, &no_model), &brute_force(&imgs, present, |_| None, false), "no model");

            // The other orders, each against its own brute-force sort.
            let shown: Vec<&Img> = imgs.iter().filter(|i| present(i)).collect();
            let order_of = |order: ViewOrder, reverse: bool| -> Vec<i64> {
                let query = ViewQuery { order, reverse, ..own_view(ViewFilter::default()) };
                store.view(&query).unwrap().entries.iter().map(|e| e.image_id).collect()
            };
            let sorted = |cmp: &dyn Fn(&&Img, &&Img) -> std::cmp::Ordering| {
                let mut v = shown.clone();
                v.sort_by(|a, b| cmp(a, b));
                v.iter().map(|i| i.id).collect::<Vec<_>>()
            };
            assert_eq!(
                order_of(ViewOrder::Date, false),
                sorted(&|a, b| b.mtime_ns.cmp(&a.mtime_ns).then(a.id.cmp(&b.id)))
            );
            assert_eq!(
                order_of(ViewOrder::Date, true),
                sorted(&|a, b| a.mtime_ns.cmp(&b.mtime_ns).then(a.id.cmp(&b.id)))
            );
            assert_eq!(order_of(ViewOrder::Name, false), sorted(&|a, b| a.path.cmp(&b.path)));
            assert_eq!(
                order_of(ViewOrder::Size, false),
                sorted(&|a, b| (b.pixels, b.size).cmp(&(a.pixels, a.size)).then(a.id.cmp(&b.id)))
            );
            assert_eq!(
                order_of(ViewOrder::Rating, false),
                sorted(&|a, b| {
                    let reward = |i: &Img| i.reward.map(|r| (r * 1000.0) as i64);
                    (a.rating.is_none(), std::cmp::Reverse(a.rating), std::cmp::Reverse(reward(a)), a.id).cmp(&(
                        b.rating.is_none(),
                        std::cmp::Reverse(b.rating),
                        std::cmp::Reverse(reward(b)),
                        b.id,
                    ))
                })
            );
        }
    }

    #[test]
    fn slim_rows_come_in_the_ids_order_with_the_views_reward() {
        let (_dir, store, imgs, _) = library(60);
        let by_id = |id: i64| imgs.iter().find(|i| i.id == id).unwrap();
        for (query, reward) in [
            (own_view(ViewFilter::default()), (|i: &Img| i.reward) as fn(&Img) -> Option<f64>),
            (ViewQuery { order: ViewOrder::RewardFor(RERANK.into()), ..own_view(ViewFilter::default()) }, |i: &Img| {
                i.rerank
            }),
        ] {
            // Any order, a missing and a failed image among them, and an id that does not exist.
            let mut ids: Vec<i64> = imgs.iter().map(|i| i.id).rev().collect();
            ids.insert(3, 999_999);
            let rows = store.slim_rows(&ids, &query).unwrap();
            ids.retain(|id| *id != 999_999);
            assert_eq!(rows.iter().map(|r| r.image_id).collect::<Vec<_>>(), ids);
            for row in &rows {
                let img = by_id(row.image_id);
                assert_eq!(row.path, img.path);
                assert_eq!(row.content_hash, img.hash);
                assert_eq!(row.prompt.as_deref(), img.prompt);
                assert_eq!(row.checkpoint.as_deref(), Some(img.checkpoint));
                assert_eq!(row.reward, reward(img), "reward of {}", img.id);
                assert_eq!(row.rating, img.rating);
                assert_eq!(row.favorite, img.favorite);
                assert_eq!(row.truncated, img.prompt.map(|p| p == LONG), "truncated of {:?}", img.prompt);
                assert_eq!(row.error.is_some(), img.error);
                assert_eq!(row.missing, img.missing);
            }
        }
        assert!(store.slim_rows(&[], &own_view(ViewFilter::default())).unwrap().is_empty());
    }

    #[test]
    fn image_params_are_the_parsed_generation_parameters() {
        let (_dir, mut store, imgs, _) = library(12);
        let img = &imgs[4];
        let params = store.image_params(img.id).unwrap().unwrap();
        assert_eq!(params.prompt.as_deref(), img.prompt);
        assert_eq!(params.model.as_deref(), Some(img.checkpoint));
        assert_eq!((params.seed, params.generator.as_deref()), (Some(4), Some(img.generator)));
        assert_eq!(store.image_params(999_999).unwrap(), None);
        let bare = ImageRecord { path: PathBuf::from("/bare.png"), size: 1, ..ImageRecord::default() };
        let id = store.upsert_image(&bare).unwrap();
        assert_eq!(store.image_params(id).unwrap(), None);
    }

    #[test]
    fn percentiles_run_from_worst_zero_to_best_hundred_and_ties_share() {
        let mut entries: Vec<ViewEntry> = [Some(3.0), None, Some(1.0), Some(2.0), Some(2.0), Some(0.5)]
            .into_iter()
            .enumerate()
            .map(|(i, reward)| ViewEntry { image_id: i as i64, reward, percentile: None })
            .collect();
        assert_eq!(fill_percentiles(&mut entries), 5);
        let pct: Vec<Option<f32>> = entries.iter().map(|e| e.percentile).collect();
        assert_eq!(pct, vec![Some(100.0), None, Some(25.0), Some(50.0), Some(50.0), Some(0.0)]);
    }

    #[test]
    fn reward_keys_sort_like_rewards_and_give_them_back() {
        let rewards = [Some(-3.5), Some(-0.0), None, Some(0.0), Some(2.25), Some(-1e-300), Some(7.0)];
        for reverse in [false, true] {
            let mut keys: Vec<u64> = rewards.iter().map(|r| reward_key(*r, reverse)).collect();
            for (key, reward) in keys.iter().zip(rewards) {
                assert_eq!(reward_of_key(*key, reverse).map(f64::to_bits), reward.map(f64::to_bits));
            }
            keys.sort_unstable();
            let sorted: Vec<Option<f64>> = keys.iter().map(|k| reward_of_key(*k, reverse)).collect();
            let mut expected: Vec<f64> = rewards.iter().flatten().copied().collect();
            expected.sort_by(|a, b| if reverse { a.total_cmp(b) } else { b.total_cmp(a) });
            let expected: Vec<Option<f64>> = expected.into_iter().map(Some).chain([None]).collect();
            assert_eq!(sorted, expected, "reverse {reverse}");
        }
    }

    #[test]
    fn like_wildcards_in_a_search_are_literal() {
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }

    #[test]
    fn a_view_entry_stays_within_its_memory_budget() {
        assert!(std::mem::size_of::<ViewEntry>() <= 32);
    }
}
