//! `rewardlens bench --library N`: a synthetic library of N images (rows written through the store
//! API, no image files) with realistic metadata and one model's scores, then the queries the app's
//! grid and summaries make, timed cold (a fresh connection's first query) and warm (median of 5),
//! against the targets at N = 100,000.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use rewardlens::image_file::ContentHash;
use rewardlens::library::metadata::{GenerationParams, prompt_group_key};
use rewardlens::library::store::{ImageRecord, Rating, ScoreRow, Store, StoreError};
use rewardlens::library::views::{ViewEntry, ViewFilter, ViewQuery};
use rewardlens::model::{PromptTokenizer, TokenKey};

/// The model id the synthetic scores are stored under.
const MODEL_ID: &str = "bench-library:ImageReward-v1.0";

/// The word the search query looks for: it is in one prompt group of 20.
const SEARCH_WORD: &str = "lighthouse";

/// Rows written per transaction while building.
const BUILD_CHUNK: usize = 10_000;

/// Warm repetitions; their median is reported.
const WARM_REPS: usize = 5;

/// The library size the targets are set for.
const TARGET_IMAGES: usize = 100_000;

/// Checkpoints with their hashes and how much better or worse than average their images score.
const CHECKPOINTS: [(&str, &str, f64); 8] = [
    ("sd_xl_base_1.0", "31e35c80fc", 0.35),
    ("juggernautXL_v9Rundiffusionphoto2", "c9e3e68f89", 0.5),
    ("dreamshaper_8", "879db523c3", 0.1),
    ("realisticVisionV51_v51VAE", "15012c538f", 0.2),
    ("epicrealism_naturalSinRC1VAE", "84d76a0328", 0.0),
    ("revAnimated_v122EOL", "4199bcdd14", -0.2),
    ("animagineXLV31_v31", "e3c47aedb0", -0.05),
    ("v1-5-pruned-emaonly", "6ce0161689", -0.6),
];

/// Samplers as A1111 names them.
const SAMPLERS: [&str; 6] = ["Euler a", "DPM++ 2M Karras", "DPM++ SDE Karras", "DDIM", "UniPC", "DPM++ 2M SDE"];

/// Prompt parts; a prompt group is one combination (none of them contains [`SEARCH_WORD`]).
const SUBJECTS: [&str; 40] = [
    "a portrait of an old fisherman",
    "a red fox",
    "a cyberpunk street market",
    "a knight in silver armor",
    "a cozy cabin",
    "an astronaut riding a horse",
    "a bowl of ramen",
    "a steampunk airship",
    "a snow leopard",
    "a futuristic city skyline",
    "a young witch reading a book",
    "a vintage sports car",
    "a dragon perched on a cliff",
    "a field of sunflowers",
    "a samurai warrior",
    "a robot tending a garden",
    "a medieval castle",
    "a golden retriever puppy",
    "an ancient temple",
    "a jellyfish",
    "a cup of coffee",
    "a mountain lake",
    "a space station",
    "a tiger in the jungle",
    "a wizard casting a spell",
    "a girl with a red umbrella",
    "a floating island",
    "a bustling train station",
    "an owl on a branch",
    "a neon diner",
    "a viking ship",
    "a hummingbird",
    "a desert caravan",
    "a haunted mansion",
    "a koi pond",
    "a mech suit",
    "a bakery storefront",
    "a polar bear",
    "a cathedral interior",
    "a hot air balloon",
];
const SETTINGS: [&str; 25] = [
    "in a misty forest",
    "at golden hour",
    "on the moon",
    "under neon rain",
    "in a snowy valley",
    "by the sea",
    "in a crowded city",
    "at night under the stars",
    "in a sunlit meadow",
    "inside a cave",
    "on a rooftop",
    "in the desert",
    "during a thunderstorm",
    "in autumn",
    "underwater",
    "in a library",
    "at dawn",
    "in the clouds",
    "on a busy street",
    "in a greenhouse",
    "in a ruined city",
    "at a carnival",
    "on a frozen lake",
    "in a bamboo grove",
    "in a candlelit room",
];
const STYLES: [&str; 10] = [
    "oil painting",
    "studio photo, 85mm",
    "watercolor",
    "anime key visual",
    "octane render",
    "pencil sketch",
    "cinematic still",
    "digital art",
    "ukiyo-e print",
    "35mm film photo",
];
const DETAILS: [&str; 5] =
    ["highly detailed", "trending on artstation", "sharp focus", "dramatic lighting", "soft pastel colors"];

/// The negative prompts the synthetic images carry.
const NEGATIVES: [&str; 3] = [
    "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, cropped, worst quality",
    "blurry, watermark, signature, jpeg artifacts",
    "",
];

/// Generation sizes (width, height).
const SIZES: [(u32, u32); 4] = [(512, 512), (512, 768), (1024, 1024), (832, 1216)];

/// A small deterministic generator (SplitMix64), so every run builds the same library.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal with mean 0 and deviation 1 (Irwin–Hall of 4).
    fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.unit()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

/// The base text of prompt group `g`: one combination of the parts, every 20th with the search word.
fn group_prompt(g: usize) -> String {
    let (s, rest) = (g % SUBJECTS.len(), g / SUBJECTS.len());
    let (t, rest) = (rest % SETTINGS.len(), rest / SETTINGS.len());
    let (y, rest) = (rest % STYLES.len(), rest / STYLES.len());
    let (d, round) = (rest % DETAILS.len(), rest / DETAILS.len());
    let mut prompt = format!("{} {}, {}, {}", SUBJECTS[s], SETTINGS[t], STYLES[y], DETAILS[d]);
    if g % 20 == 7 {
        prompt.push_str(&format!(", a {SEARCH_WORD} in the distance"));
    }
    if round > 0 {
        prompt.push_str(&format!(", variation {round}"));
    }
    prompt
}

/// The same prompt as a user retyped it: capitalised words, or doubled spaces and a trailing one.
fn variant(prompt: &str, which: usize) -> String {
    match which {
        1 => prompt
            .split(' ')
            .map(|w| {
                let mut c = w.chars();
                c.next().map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
            })
            .collect::<Vec<_>>()
            .join(" "),
        2 => format!("{} ", prompt.replace(", ", ",  ")),
        _ => prompt.to_string(),
    }
}

/// What was built, for the report.
struct Built {
    images: usize,
    groups: usize,
    prompt_texts: usize,
    scored: usize,
    search_hits: usize,
    build_secs: f64,
}

/// Runs the benchmark on `count` synthetic images and prints its table.
pub fn run(count: usize) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("rewardlens-library-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = run_in(&dir, count);
    // Best effort: a leftover temp folder is not worth failing the benchmark over.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, count: usize) -> anyhow::Result<ExitCode> {
    let db = dir.join("bench.sqlite3");
    let built = build_library(&db, dir, count).context("cannot build the synthetic library")?;
    eprintln!(
        "built {} images ({} prompt groups, {} prompt texts, {} scored) in {:.2} s",
        built.images, built.groups, built.prompt_texts, built.scored, built.build_secs
    );

    let view_query = ViewQuery { model_id: Some(MODEL_ID.to_string()), ..ViewQuery::default() };
    let search_query = ViewQuery {
        filter: ViewFilter { text: Some(SEARCH_WORD.to_string()), ..ViewFilter::default() },
        ..view_query.clone()
    };
    let (view_cold, view_warm, view) = measure(&db, |s| s.view(&view_query))?;
    let page_ids: Vec<i64> = view.entries.iter().skip(1000).take(200).map(|e| e.image_id).collect();
    let (page_cold, page_warm, page) = measure(&db, |s| s.slim_rows(&page_ids, &view_query))?;
    let (search_cold, search_warm, search) = measure(&db, |s| s.view(&search_query))?;
    let (groups_cold, groups_warm, groups) = measure(&db, |s| s.prompt_groups(&view_query))?;
    let (board_cold, board_warm, board) = measure(&db, |s| s.checkpoint_leaderboard(&view_query))?;
    let view_bytes = std::mem::size_of::<ViewEntry>() * view.entries.capacity();
    let bytes_per_image = view_bytes as f64 / count as f64;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "library: {} images, {} prompt groups ({} texts), {} checkpoints, {} scored; built in {:.2} s",
        built.images,
        built.groups,
        built.prompt_texts,
        CHECKPOINTS.len(),
        built.scored,
        built.build_secs
    )?;
    writeln!(
        out,
        "view: {} images ({} scored); page: {} rows; search {SEARCH_WORD:?}: {} images ({:.1}%, {} expected); \
         {} prompt groups; {} checkpoints, {} comparisons",
        view.len(),
        view.scored,
        page.len(),
        search.len(),
        100.0 * search.len() as f64 / view.len().max(1) as f64,
        built.search_hits,
        groups.len(),
        board.checkpoints.len(),
        board.comparisons.len()
    )?;
    if count != TARGET_IMAGES {
        writeln!(out, "note: the targets are set for {TARGET_IMAGES} images")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "query", "cold ms", "warm ms", "target ms", "cold/tgt", "warm/tgt"
    )?;
    for (name, cold, warm, target_ms) in [
        ("view (count + ordered ids)", view_cold, view_warm, 50.0),
        ("page of 200 slim rows", page_cold, page_warm, 5.0),
        ("prompt search", search_cold, search_warm, 100.0),
        ("prompt groups", groups_cold, groups_warm, 200.0),
        ("checkpoint leaderboard", board_cold, board_warm, 200.0),
    ] {
        let (cold_ms, warm_ms) = (cold.as_secs_f64() * 1e3, warm.as_secs_f64() * 1e3);
        writeln!(
            out,
            "{name:<28} {cold_ms:>10.2} {warm_ms:>10.2} {target_ms:>10.0} {:>10.2} {:>10.2}",
            cold_ms / target_ms,
            warm_ms / target_ms
        )?;
    }
    writeln!(
        out,
        "{:<28} {:>10} {:>10.1} {:>10} {:>10} {:>10.2}",
        "view memory (B/image)",
        "",
        bytes_per_image,
        32,
        "",
        bytes_per_image / 32.0
    )?;
    writeln!(
        out,
        "  ({} B per entry × {} capacity for {} entries)",
        std::mem::size_of::<ViewEntry>(),
        view.entries.capacity(),
        view.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Times `query` on a fresh connection (cold: its first run, statements not yet prepared) and
/// then warm (median of [`WARM_REPS`]); returns both and the warm answer.
fn measure<T>(db: &Path, query: impl Fn(&Store) -> Result<T, StoreError>) -> anyhow::Result<(Duration, Duration, T)> {
    let store = Store::open(db).context("cannot open the benchmark library")?;
    let started = Instant::now();
    query(&store).context("query failed")?;
    let cold = started.elapsed();
    let mut times = Vec::with_capacity(WARM_REPS);
    let mut last = None;
    for _ in 0..WARM_REPS {
        let started = Instant::now();
        let answer = query(&store).context("query failed")?;
        times.push(started.elapsed());
        last = Some(answer);
    }
    times.sort();
    let answer = last.context("no warm run")?;
    Ok((cold, times[times.len() / 2], answer))
}

/// Writes the synthetic library: ~N/20 prompt groups (some images carry a case or spacing variant
/// of their group's prompt), 8 checkpoints, samplers, seeds, 4 watched folders; each readable
/// image scored against its own prompt by one model except ~2% left unscored, ~0.5% unreadable,
/// ~0.2% missing, ~3% rated and ~1% favorites.
fn build_library(db: &Path, dir: &Path, count: usize) -> anyhow::Result<Built> {
    let started = Instant::now();
    let mut store = Store::open(db)?;
    let tokenizer = PromptTokenizer::bundled()?;
    let mut rng = Rng(0x5EED);
    let groups = (count / 20).max(1);
    let mut folders = Vec::new();
    for name in ["2023", "2024", "comfy", "inbox"] {
        let path = dir.join("library").join(name);
        folders.push((store.add_folder(&path)?, path));
    }
    let mut tokens: HashMap<String, (TokenKey, bool)> = HashMap::new();
    let mut scored = 0;
    let mut search_hits = 0;
    let mut missing = Vec::new();
    let mut user_data = Vec::new();
    let base_mtime_ns: i64 = 1_700_000_000_000_000_000;
    for chunk_start in (0..count).step_by(BUILD_CHUNK) {
        let chunk_end = (chunk_start + BUILD_CHUNK).min(count);
        let mut records = Vec::with_capacity(chunk_end - chunk_start);
        let mut scores: Vec<(ContentHash, String, f64)> = Vec::new();
        for i in chunk_start..chunk_end {
            let g = rng.below(groups);
            let base = group_prompt(g);
            let which = match rng.below(10) {
                0 => 1,
                1 => 2,
                _ => 0,
            };
            let prompt = variant(&base, which);
            if g % 20 == 7 {
                search_hits += 1;
            }
            let (checkpoint, checkpoint_hash, quality) = CHECKPOINTS[rng.below(CHECKPOINTS.len())];
            let sampler = SAMPLERS[rng.below(SAMPLERS.len())];
            let (width, height) = SIZES[rng.below(SIZES.len())];
            let seed = i64::try_from(rng.next() >> 32).unwrap_or(0);
            let steps = [20u32, 25, 30, 40][rng.below(4)];
            let cfg = [5.0, 6.0, 7.0, 7.5][rng.below(4)];
            let negative = NEGATIVES[rng.below(NEGATIVES.len())];
            let comfy = rng.below(5) == 0;
            let (folder_id, folder) = &folders[if comfy { 2 } else { rng.below(folders.len()) }];
            let raw = format!(
                "{prompt}\nNegative prompt: {negative}\nSteps: {steps}, Sampler: {sampler}, CFG scale: {cfg}, \
                 Seed: {seed}, Size: {width}x{height}, Model hash: {checkpoint_hash}, Model: {checkpoint}, \
                 Version: v1.10.1"
            );
            let params = GenerationParams {
                generator: Some(if comfy { "comfyui" } else { "a1111" }.to_string()),
                prompt: Some(prompt.clone()),
                negative_prompt: Some(negative.to_string()).filter(|n| !n.is_empty()),
                model: Some(checkpoint.to_string()),
                model_hash: Some(checkpoint_hash.to_string()),
                seed: Some(seed),
                steps: Some(steps),
                sampler: Some(sampler.to_string()),
                scheduler: None,
                cfg: Some(cfg),
                width: Some(width),
                height: Some(height),
                settings: BTreeMap::from([("Version".to_string(), "v1.10.1".to_string())]),
                raw,
            };
            let unreadable = rng.below(200) == 0;
            let hash = ContentHash::of(&(i as u64).to_le_bytes());
            let path = folder.join(format!("{:05}-{seed}.png", i));
            if rng.below(500) == 0 {
                missing.push(path.clone());
            }
            records.push(ImageRecord {
                folder_id: Some(*folder_id),
                path,
                content_hash: (!unreadable).then(|| hash.clone()),
                size: 400_000 + rng.below(1_600_000) as u64,
                mtime_ns: base_mtime_ns + i as i64 * 7_000_000_000 + rng.below(1_000_000_000) as i64,
                width: Some(width),
                height: Some(height),
                format: Some("png".to_string()),
                generator: params.generator.clone(),
                prompt: Some(prompt.clone()),
                negative_prompt: params.negative_prompt.clone(),
                params_json: Some(serde_json::to_string(&params)?),
                prompt_key: Some(prompt_group_key(&prompt)),
                error: unreadable.then(|| "truncated: the file ends before the image does".to_string()),
                checkpoint: Some(checkpoint.to_string()),
                checkpoint_hash: Some(checkpoint_hash.to_string()),
                sampler: Some(sampler.to_string()),
                seed: Some(seed),
            });
            if !tokens.contains_key(&prompt) {
                let t = tokenizer.encode(&prompt)?;
                tokens.insert(prompt.clone(), (t.key(), t.truncated));
            }
            if unreadable {
                continue;
            }
            if rng.below(50) != 0 {
                // A prompt's own quality, the checkpoint's, and the image's luck.
                let group_quality = ((g as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 500.0 - 1.0;
                let value = (group_quality + quality + 0.8 * rng.normal()) as f32;
                scores.push((hash.clone(), prompt, f64::from(value)));
                scored += 1;
            }
            if rng.below(33) == 0 {
                user_data.push((hash.clone(), Some(1 + rng.below(7) as u8), false));
            }
            if rng.below(100) == 0 {
                user_data.push((hash, None, true));
            }
        }
        store.upsert_images(&records)?;
        let rows: Vec<ScoreRow> = scores
            .iter()
            .map(|(hash, prompt, value)| {
                let (tokens, truncated) = tokens[prompt.as_str()];
                ScoreRow { content_hash: hash, prompt, tokens, truncated, value: *value }
            })
            .collect();
        store.record_scores(MODEL_ID, &rows)?;
    }
    let token_rows: Vec<(&str, TokenKey, bool)> = tokens.iter().map(|(p, (k, t))| (p.as_str(), *k, *t)).collect();
    store.record_prompt_tokens(MODEL_ID, &token_rows)?;
    store.set_last_model_id(MODEL_ID)?;
    for path in &missing {
        store.mark_missing(path)?;
    }
    for (hash, overall, favorite) in &user_data {
        if *favorite {
            store.add_favorite(hash)?;
        } else {
            store.set_rating(hash, Rating { overall: *overall, alignment: None, fidelity: None })?;
        }
    }
    Ok(Built {
        images: count,
        groups,
        prompt_texts: tokens.len(),
        scored,
        search_hits,
        build_secs: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_group_with_their_prompt_and_only_every_twentieth_group_has_the_search_word() {
        for g in [0, 7, 27, 4999, 60_000] {
            let base = group_prompt(g);
            for which in 0..3 {
                assert_eq!(prompt_group_key(&variant(&base, which)), prompt_group_key(&base), "{g} {which}");
            }
            assert_eq!(base.contains(SEARCH_WORD), g % 20 == 7, "{base}");
        }
        let distinct: std::collections::HashSet<String> = (0..5000).map(group_prompt).collect();
        assert_eq!(distinct.len(), 5000);
    }

    #[test]
    fn a_small_library_builds_and_every_query_answers() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bench.sqlite3");
        let built = build_library(&db, dir.path(), 400).unwrap();
        assert_eq!((built.images, built.groups), (400, 20));
        let store = Store::open(&db).unwrap();
        let query = ViewQuery { model_id: Some(MODEL_ID.to_string()), ..ViewQuery::default() };
        let view = store.view(&query).unwrap();
        assert!(view.len() < 400 && view.len() > 390, "missing rows are hidden: {}", view.len());
        assert!(view.scored > 350 && view.scored <= built.scored, "{} of {}", view.scored, built.scored);
        assert_eq!(store.checkpoint_leaderboard(&query).unwrap().checkpoints.len(), 8);
    }
}
