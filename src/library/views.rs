//! The library as the app's screens ask for it: a filtered, ordered view of every image (each
//! ranked by its reward and the reward's percentile within the view), slim rows for the cells on
//! screen, and one image's full generation parameters on demand.
//!
//! A view is answered by one SQL statement over indexed columns and held as 24 bytes per image
//! (id, reward, percentile); rows are fetched by id for what is on screen only, never by OFFSET.
//! Rewards come from the store's scores of one model, keyed by what the model saw of the prompt:
//! the image's own prompt by default, or one given prompt for a rerank.

use rusqlite::types::Value;
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

/// A view as SQL: `FROM images i` is followed by `joins` and `conditions`.
pub(super) struct ViewSql {
    /// The joins the reward and filters need.
    pub joins: String,
    /// ` WHERE …`, or empty.
    pub conditions: String,
    /// Parameters of both, numbered from 1.
    pub args: Vec<Value>,
    /// The SQL expression of the shown reward (`NULL` when there is none).
    pub reward: &'static str,
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

    /// Joins and conditions of a view; `reward` is the SQL expression of the shown reward.
    fn view_sql(&self, query: &ViewQuery) -> Result<(Sql, &'static str), StoreError> {
        let mut sql = Sql { joins: String::new(), conditions: Vec::new(), args: Vec::new() };
        let reward = match (&query.model_id, query.reward_prompt()) {
            (None, _) => "NULL",
            (Some(model), None) => {
                let m = sql.arg(Value::Text(model.clone()));
                sql.joins.push_str(&format!(
                    " LEFT JOIN prompt_tokens t ON t.model_id = {m} AND t.prompt_id = i.prompt_id \
                      LEFT JOIN scores s ON s.content_hash = i.content_hash AND s.model_id = {m} \
                      AND s.token_key = t.token_key"
                ));
                "s.value"
            }
            (Some(model), Some(prompt)) => match self.prompt_tokens_key(model, prompt)? {
                Some(key) => {
                    let m = sql.arg(Value::Text(model.clone()));
                    let k = sql.arg(Value::Integer(key));
                    sql.joins.push_str(&format!(
                        " LEFT JOIN scores s ON s.content_hash = i.content_hash AND s.model_id = {m} \
                          AND s.token_key = {k}"
                    ));
                    "s.value"
                }
                // The model has never read this prompt: nothing is scored against it yet.
                None => "NULL",
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
        match f.status {
            Some(ScoreStatus::Scored) => sql.conditions.push(format!("{reward} IS NOT NULL")),
            Some(ScoreStatus::Unscored) => sql.conditions.push(format!("{reward} IS NULL AND i.error IS NULL")),
            Some(ScoreStatus::Failed) => sql.conditions.push("i.error IS NOT NULL".into()),
            None => {}
        }
        if let Some(min) = f.min_score {
            let p = sql.arg(Value::Real(min));
            sql.conditions.push(format!("{reward} >= {p}"));
        }
        if let Some(max) = f.max_score {
            let p = sql.arg(Value::Real(max));
            sql.conditions.push(format!("{reward} <= {p}"));
        }
        if let Some(from) = f.modified_from {
            let p = sql.arg(Value::Integer(from.saturating_mul(1_000_000_000)));
            sql.conditions.push(format!("i.mtime_ns >= {p}"));
        }
        if let Some(before) = f.modified_before {
            let p = sql.arg(Value::Integer(before.saturating_mul(1_000_000_000)));
            sql.conditions.push(format!("i.mtime_ns < {p}"));
        }
        Ok((sql, reward))
    }

    /// A view's joins, `WHERE` clause and parameters, with the SQL expression of the shown
    /// reward: what views and groups select from.
    pub(super) fn view_sql_parts(&self, query: &ViewQuery) -> Result<ViewSql, StoreError> {
        let (sql, reward) = self.view_sql(query)?;
        let conditions =
            if sql.conditions.is_empty() { String::new() } else { format!(" WHERE {}", sql.conditions.join(" AND ")) };
        Ok(ViewSql { joins: sql.joins, conditions, args: sql.args, reward })
    }

    /// Answers a view: every matching image in order, with its reward and percentile.
    pub fn view(&self, query: &ViewQuery) -> Result<View, StoreError> {
        let ViewSql { joins, conditions, args, reward } = self.view_sql_parts(query)?;
        let order = order_by(query, reward);
        let text = format!("SELECT i.id, {reward} FROM images i{joins}{conditions} ORDER BY {order}");
        let mut entries: Vec<ViewEntry> = self.read(|c| {
            let mut stmt = c.prepare_cached(&text)?;
            let rows = stmt.query_map(params_from_iter(args), |r| {
                Ok(ViewEntry {
                    image_id: r.get(0)?,
                    reward: r.get::<_, Option<f64>>(1)?.map(|v| v as f32),
                    percentile: None,
                })
            })?;
            rows.collect()
        })?;
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
                    path: std::path::PathBuf::from(r.get::<_, String>(1)?),
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

impl Store {
    /// A view's images in order with their path, content hash and own prompt: what the scoring
    /// worker enumerates to score a view (one query, no per-row lookups).
    pub fn view_items(&self, query: &ViewQuery) -> Result<Vec<ViewItem>, StoreError> {
        let ViewSql { joins, conditions, args, reward } = self.view_sql_parts(query)?;
        let text = format!(
            "SELECT i.id, i.path, i.content_hash, i.prompt FROM images i{joins}{conditions} ORDER BY {}",
            order_by(query, reward)
        );
        self.read(|c| {
            let mut stmt = c.prepare_cached(&text)?;
            let rows = stmt.query_map(params_from_iter(args), |r| {
                Ok(ViewItem {
                    image_id: r.get(0)?,
                    path: std::path::PathBuf::from(r.get::<_, String>(1)?),
                    content_hash: r.get(2)?,
                    prompt: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// The `ORDER BY` of a view; unscored and unrated images stay last either way.
fn order_by(query: &ViewQuery, reward: &str) -> String {
    let (desc, asc) = if query.reverse { ("ASC", "DESC") } else { ("DESC", "ASC") };
    match query.order {
        ViewOrder::Reward | ViewOrder::RewardFor(_) => format!("{reward} IS NULL, {reward} {desc}, i.id"),
        ViewOrder::Date => format!("i.mtime_ns {desc}, i.id"),
        ViewOrder::Name => format!("i.path {asc}"),
        ViewOrder::Rating => format!("r.overall IS NULL, r.overall {desc}, {reward} {desc}, i.id"),
        ViewOrder::Size => format!("COALESCE(i.width * i.height, 0) {desc}, i.size {desc}, i.id"),
    }
}

/// Sets each scored entry's percentile within the view; returns how many are scored.
fn fill_percentiles(entries: &mut [ViewEntry]) -> usize {
    let mut values: Vec<f32> = entries.iter().filter_map(|e| e.reward).collect();
    values.sort_by(f32::total_cmp);
    let n = values.len();
    for entry in entries.iter_mut() {
        if let Some(v) = entry.reward {
            let below = values.partition_point(|x| x.total_cmp(&v).is_lt());
            entry.percentile = Some(if n > 1 { 100.0 * below as f32 / (n - 1) as f32 } else { 100.0 });
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn like_wildcards_in_a_search_are_literal() {
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }

    #[test]
    fn a_view_entry_stays_within_its_memory_budget() {
        assert!(std::mem::size_of::<ViewEntry>() <= 32);
    }
}
