//! `rewardlens bench --rerank N`: full scoring of N images against their first prompt, then a
//! rerank of the same images against a new prompt from the image-embedding cache, both on the
//! scoring worker exactly as the app runs them (temporary database and cache).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use anyhow::Context;

use super::score::wait_for_model;
use candle_core::{DType, Device, Tensor};
use rewardlens::image_file::ContentHash;
use rewardlens::model::weights::{WeightStore, Weights};
use rewardlens::model::{DeviceKind, ImageReward, MedConfig, Precision, VisionConfig};
use rewardlens::scoring::{
    ModelSpec, Priority, ScoreItem, ScoreRequest, ScoreResult, ScoreSource, ScoringEvent, ScoringWorker, WorkerConfig,
};
use rewardlens::synthetic::write_synthetic_pngs_sized;

/// First prompt: the one the reference benchmark times.
const FIRST_PROMPT: &str =
    "a painting of an astronaut riding a horse on the moon, highly detailed, trending on artstation";
/// The prompt the user "drops in" for the rerank.
const SECOND_PROMPT: &str = "a cozy cabin in a snowy forest at dusk, warm light in the windows, photorealistic";

/// Side of the synthetic images: noise PNGs of a generator's typical size cost a realistic decode.
const IMAGE_SIDE_PX: u32 = 512;

/// Runs the benchmark on `count` synthetic images and prints its table.
pub fn run(
    model: Option<&Path>,
    device: DeviceKind,
    dtype: Option<Precision>,
    batch: Option<usize>,
    count: usize,
) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("rewardlens-rerank-bench-{}", std::process::id()));
    let result = match model {
        Some(model) => run_in(&dir, model, device, dtype, batch, count),
        None => write_random_model(&dir.join("model")).and_then(|m| run_in(&dir, &m, device, dtype, batch, count)),
    };
    // Best effort: a leftover temp folder is not worth failing the benchmark over.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    dir: &Path,
    model: &Path,
    device: DeviceKind,
    dtype: Option<Precision>,
    batch: Option<usize>,
    count: usize,
) -> anyhow::Result<ExitCode> {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).with_context(|| format!("cannot create {}", images.display()))?;
    write_synthetic_pngs_sized(&images, count, IMAGE_SIDE_PX)
        .with_context(|| format!("cannot write images to {}", images.display()))?;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&images)?.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = WorkerConfig {
        model: ModelSpec { path: model.to_path_buf(), device, dtype, batch },
        db: Some(dir.join("bench.sqlite3")),
        embedding_cache: Some((dir.join("embeddings"), 64 << 30)),
        decode_threads: cores,
        waker: None,
        background: false,
    };
    let (worker, events) = ScoringWorker::start(config).context("cannot start the scoring worker")?;
    wait_for_model(&events).with_context(|| format!("cannot load the model from {}", model.display()))?;

    // First scoring: files as a user adds them (read, hashed, decoded, full model).
    let started = Instant::now();
    let request = ScoreRequest {
        items: paths.iter().cloned().map(ScoreItem::file).collect(),
        prompt: Some(FIRST_PROMPT.to_string()),
        priority: Priority::Library,
        supersede: false,
    };
    let first = finish(&events, worker.submit(request).map_err(|e| anyhow::anyhow!(e))?)?;
    let first_secs = started.elapsed().as_secs_f64();
    let tower_after_first = worker.stats().image_tower_images.load(Ordering::Relaxed);

    // Rerank: the library's rows (hash known) against a new prompt, as the app asks.
    let hashes: HashMap<&Path, &ContentHash> = first.iter().map(|r| (r.path.as_path(), &r.content_hash)).collect();
    let items = paths
        .iter()
        .map(|p| ScoreItem {
            path: p.clone(),
            content_hash: hashes.get(p.as_path()).map(|h| (*h).clone()),
            own_prompt: None,
        })
        .collect();
    let started = Instant::now();
    let request =
        ScoreRequest { items, prompt: Some(SECOND_PROMPT.to_string()), priority: Priority::Visible, supersede: true };
    let rerank = finish(&events, worker.submit(request).map_err(|e| anyhow::anyhow!(e))?)?;
    let rerank_secs = started.elapsed().as_secs_f64();
    let tower_in_rerank = worker.stats().image_tower_images.load(Ordering::Relaxed) - tower_after_first;
    let from_cache = rerank.iter().filter(|r| r.source == ScoreSource::CachedTokens).count();
    worker.stop();

    let mut out = std::io::stdout().lock();
    writeln!(out, "{count} synthetic {IMAGE_SIDE_PX}x{IMAGE_SIDE_PX} PNGs, model {}", model.display())?;
    writeln!(out, "{:<34} {:>8} {:>10} {:>9}", "run", "images", "seconds", "img/s")?;
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    writeln!(
        out,
        "{:<34} {:>8} {:>10.2} {:>9.2}",
        "first scoring (decode + full model)",
        first.len(),
        first_secs,
        rate(first.len(), first_secs)
    )?;
    writeln!(
        out,
        "{:<34} {:>8} {:>10.2} {:>9.2}",
        "rerank, new prompt (cached tokens)",
        rerank.len(),
        rerank_secs,
        rate(rerank.len(), rerank_secs)
    )?;
    writeln!(
        out,
        "rerank is {:.1}x faster; {from_cache} of {} reranked from cached tokens, image tower ran {tower_in_rerank} times",
        first_secs / rerank_secs.max(1e-9),
        rerank.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a full-size ViT-L/16 + BERT-base model with random weights (1.8 GB) into `dir`.
fn write_random_model(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    eprintln!("writing a full-size random-weight model to {} …", dir.display());
    let store = WeightStore::recording(0.02);
    let text = MedConfig::bert_base();
    ImageReward::new(&VisionConfig::vit_large_224(), &text, &Weights::new(&store, DType::F32, &Device::Cpu))?;
    let tensors: HashMap<String, Tensor> = store.take_recorded().into_iter().collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "vocab_size": text.vocab_size,
        "hidden_size": text.hidden_size,
        "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads,
        "intermediate_size": text.intermediate_size,
        "max_position_embeddings": text.max_position_embeddings,
        "layer_norm_eps": text.layer_norm_eps,
        "hidden_act": text.hidden_act,
        "encoder_width": 768,
    });
    std::fs::write(dir.join("med_config.json"), serde_json::to_vec_pretty(&config)?)?;
    Ok(dir.to_path_buf())
}

/// Collects a ticket's scores; a failed image is an error here (the benchmark's images are good).
fn finish(events: &Receiver<ScoringEvent>, ticket: u64) -> anyhow::Result<Vec<ScoreResult>> {
    let mut scored = Vec::new();
    loop {
        match events.recv().context("the scoring worker stopped")? {
            ScoringEvent::Scored(batch) => scored.extend(batch.into_iter().filter(|r| r.ticket == ticket)),
            ScoringEvent::Failed(failure) => anyhow::bail!("{failure}"),
            ScoringEvent::Finished { ticket: t, .. } if t == ticket => return Ok(scored),
            ScoringEvent::Warning(warning) => eprintln!("note: {warning}"),
            _ => {}
        }
    }
}
