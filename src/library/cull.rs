//! Culling: choosing the images a view ranks worst ("below reward X", "the bottom P %") so the
//! user can review them and send them to the trash in one step. Favorites and rated images are
//! kept out unless asked for: the user has said they matter.

use super::store::{Store, StoreError};
use super::trash::{TrashError, move_to_trash};
use super::views::{ScoreStatus, SlimRow, ViewFilter, ViewOrder, ViewQuery};

/// Which images a cull takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CullRule {
    /// Reward strictly below this.
    Below(f64),
    /// The worst P percent of the view's scored images (rounded up).
    BottomPercent(f64),
}

/// What a cull may take besides unrated, non-favorite images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    /// Take favorites too.
    pub include_favorites: bool,
    /// Take rated images too.
    pub include_rated: bool,
}

/// The images of `query`'s view the rule takes, worst first; favorites and rated images only when
/// `keep` lets them. Only scored images that are on disk can be taken.
pub fn cull_candidates(
    store: &Store,
    query: &ViewQuery,
    rule: CullRule,
    keep: Keep,
) -> Result<Vec<SlimRow>, StoreError> {
    let filter = ViewFilter {
        status: Some(ScoreStatus::Scored),
        include_missing: false,
        max_score: match rule {
            CullRule::Below(x) => Some(query.filter.max_score.map_or(x, |m| m.min(x))),
            CullRule::BottomPercent(_) => query.filter.max_score,
        },
        ..query.filter.clone()
    };
    let order = match &query.order {
        ViewOrder::RewardFor(p) => ViewOrder::RewardFor(p.clone()),
        _ => ViewOrder::Reward,
    };
    let worst_first = ViewQuery { filter, order, reverse: true, model_id: query.model_id.clone() };
    let view = store.view(&worst_first)?;
    let take = match rule {
        CullRule::Below(_) => view.len(),
        CullRule::BottomPercent(p) => super::views::share_of(view.len(), p),
    };
    let ids: Vec<i64> = view.entries[..take].iter().map(|e| e.image_id).collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        for row in store.slim_rows(chunk, &worst_first)? {
            let below = match rule {
                CullRule::Below(x) => row.reward.is_some_and(|r| r < x),
                CullRule::BottomPercent(_) => row.reward.is_some(),
            };
            let kept = (row.favorite && !keep.include_favorites) || (row.rating.is_some() && !keep.include_rated);
            if below && !kept && !row.missing {
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// What a cull did.
#[derive(Debug, Default)]
pub struct CullSummary {
    /// Moved to the trash.
    pub trashed: Vec<SlimRow>,
    /// Not moved (untouched, or in the trash with the library not updated), each with why.
    pub failed: Vec<(SlimRow, TrashError)>,
}

/// Moves `rows` to the system trash, each on its own: one that cannot be moved is reported and
/// the rest go on.
pub fn trash_rows(store: &mut Store, rows: Vec<SlimRow>, stop: &std::sync::atomic::AtomicBool) -> CullSummary {
    let mut summary = CullSummary::default();
    for row in rows {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        match move_to_trash(store, &row.path) {
            Ok(()) => summary.trashed.push(row),
            Err(e) => summary.failed.push((row, e)),
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::export::tests::{MODEL, scored_library};
    use crate::library::store::Rating;

    fn names(rows: &[SlimRow]) -> Vec<String> {
        rows.iter().map(|r| r.path.file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn the_worst_are_chosen_and_favorites_and_rated_images_kept() {
        let (_dir, mut store, rows) = scored_library(10);
        store.add_favorite(rows[0].content_hash.as_ref().unwrap()).unwrap();
        let rated = Rating { overall: Some(2), ..Rating::default() };
        store.set_rating(rows[1].content_hash.as_ref().unwrap(), rated).unwrap();
        let query = ViewQuery { model_id: Some(MODEL.into()), ..ViewQuery::default() };
        let below = cull_candidates(&store, &query, CullRule::Below(0.35), Keep::default()).unwrap();
        assert_eq!(names(&below), ["img_000002.png", "img_000003.png"]);
        let all = Keep { include_favorites: true, include_rated: true };
        let below = cull_candidates(&store, &query, CullRule::Below(0.35), all).unwrap();
        assert_eq!(names(&below), ["img_000000.png", "img_000001.png", "img_000002.png", "img_000003.png"]);
        let bottom = cull_candidates(&store, &query, CullRule::BottomPercent(30.0), Keep::default()).unwrap();
        assert_eq!(names(&bottom), ["img_000002.png"]);
        let bottom = cull_candidates(&store, &query, CullRule::BottomPercent(30.0), all).unwrap();
        assert_eq!(names(&bottom), ["img_000000.png", "img_000001.png", "img_000002.png"]);
    }
}
