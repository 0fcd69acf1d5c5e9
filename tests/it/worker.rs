//! The scoring worker end to end on the tiny fixture model: store, embedding cache, rerank,
//! staleness, bad files, model failures, and a kill in the middle of a run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rewardlens::image_file::{ContentHash, ImageFileErrorKind};
use rewardlens::library::store::Store;
use rewardlens::scoring::{
    DeviceKind, EmbeddingCache, ItemError, ItemFailure, ModelSpec, ModelState, NoPrompt, Precision, Priority,
    ScoreItem, ScoreRequest, ScoreResult, ScoreSource, ScoringEvent, ScoringWorker, WorkerConfig, model_id,
};

use crate::util::{expected, fixtures};

/// Rewards through cached f16 image tokens differ from the f32 run by the tokens' rounding.
const CACHED_TOLERANCE: f64 = 2e-2;

struct Setup {
    _tmp: tempfile::TempDir,
    db: PathBuf,
    cache: PathBuf,
    images: PathBuf,
}

/// The fixture's non-JPEG images copied to a temp folder, a temp database and cache folder.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for img in expected().images.iter().filter(|i| !i.is_jpeg()) {
        std::fs::copy(fixtures().join(&img.file), images.join(Path::new(&img.file).file_name().unwrap())).unwrap();
    }
    Setup { db: tmp.path().join("lib.sqlite3"), cache: tmp.path().join("emb"), images, _tmp: tmp }
}

fn config(s: &Setup, batch: usize) -> WorkerConfig {
    WorkerConfig {
        model: ModelSpec { path: fixtures().join("tiny-st"), device: DeviceKind::Cpu, dtype: None, batch: Some(batch) },
        db: Some(s.db.clone()),
        embedding_cache: Some((s.cache.clone(), 1 << 30)),
        decode_threads: 2,
        waker: None,
        background: false,
    }
}

fn start(config: WorkerConfig) -> (ScoringWorker, Receiver<ScoringEvent>) {
    let (worker, events) = ScoringWorker::start(config).unwrap();
    loop {
        match events.recv_timeout(Duration::from_secs(30)).unwrap() {
            ScoringEvent::Model(ModelState::Ready { device, .. }) => {
                assert_eq!(device, DeviceKind::Cpu);
                return (worker, events);
            }
            ScoringEvent::Model(ModelState::Failed { error, .. }) => panic!("model failed: {error}"),
            _ => {}
        }
    }
}

fn files(dir: &Path) -> Vec<ScoreItem> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.into_iter().map(ScoreItem::file).collect()
}

fn request(items: Vec<ScoreItem>, prompt: &str, priority: Priority, supersede: bool) -> ScoreRequest {
    ScoreRequest { items, prompt: Some(prompt.to_string()), priority, supersede }
}

/// Everything a ticket produced, until its `Finished`.
#[derive(Debug, Default)]
struct Outcome {
    scored: Vec<ScoreResult>,
    failed: Vec<(PathBuf, String)>,
    failures: Vec<ItemFailure>,
    dropped: usize,
}

fn collect(events: &Receiver<ScoringEvent>, ticket: u64) -> Outcome {
    let mut out = Outcome::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match events.recv_timeout(Duration::from_secs(5)) {
            Ok(ScoringEvent::Scored(batch)) => out.scored.extend(batch.into_iter().filter(|r| r.ticket == ticket)),
            Ok(ScoringEvent::Failed(f)) if f.ticket == ticket => {
                out.failed.push((f.path.clone(), f.to_string()));
                out.failures.push(f);
            }
            Ok(ScoringEvent::Finished { ticket: t, scored, failed, dropped }) if t == ticket => {
                assert_eq!((scored, failed), (out.scored.len(), out.failed.len()));
                out.dropped = dropped;
                return out;
            }
            _ => {}
        }
    }
    panic!("ticket {ticket} did not finish: {out:?}");
}

/// The key the tiny model's tokenizer stores a prompt's scores under.
fn tiny_key(prompt: &str) -> rewardlens::model::TokenKey {
    let files = rewardlens::model::ModelFiles::discover(&fixtures().join("tiny-st")).unwrap();
    files.tokenizer().unwrap().encode(prompt).unwrap().key()
}

/// The reference's reward of an image file name for a prompt index.
fn reference_rewards(prompt: usize) -> HashMap<String, f64> {
    let e = expected();
    e.images
        .iter()
        .enumerate()
        .map(|(i, img)| (img.file.rsplit('/').next().unwrap().to_string(), f64::from(e.rewards[i][prompt])))
        .collect()
}

fn by_name(results: &[ScoreResult]) -> HashMap<String, f64> {
    results.iter().map(|r| (r.path.file_name().unwrap().to_string_lossy().into_owned(), r.score)).collect()
}

#[test]
fn a_folder_is_scored_into_the_store_once_and_a_rerank_runs_on_cached_tokens() {
    let s = setup();
    let e = expected();
    let (first_prompt, second_prompt) = (&e.prompts[0].text, &e.prompts[1].text);
    let (worker, events) = start(config(&s, 4));
    let n = files(&s.images).len();

    let t = worker.submit(request(files(&s.images), first_prompt, Priority::Library, false)).unwrap();
    let first = collect(&events, t);
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_eq!(first.scored.len(), n);
    assert!(first.scored.iter().all(|r| r.source == ScoreSource::Computed));
    let reference = reference_rewards(0);
    for (name, score) in by_name(&first.scored) {
        assert!((score - reference[&name]).abs() < 1e-4, "{name}: {score} vs {}", reference[&name]);
    }
    // In the store, under (content hash, model id, prompt).
    let store = Store::open(&s.db).unwrap();
    let id = model_id(&fixtures().join("tiny-st/model.safetensors")).unwrap();
    for r in &first.scored {
        assert_eq!(store.score(&r.content_hash, &id, tiny_key(first_prompt)).unwrap(), Some(r.score));
    }
    assert_eq!(worker.stats().image_tower_images.load(Ordering::Relaxed), n as u64);

    // The same again: answered from the store, nothing runs.
    let t = worker.submit(request(files(&s.images), first_prompt, Priority::Library, false)).unwrap();
    let again = collect(&events, t);
    assert!(again.scored.iter().all(|r| r.source == ScoreSource::Stored), "{again:?}");
    assert_eq!(worker.stats().image_tower_images.load(Ordering::Relaxed), n as u64);

    // A rerank with another prompt, the way the app asks (hashes known): the image tower does not run.
    let known: Vec<ScoreItem> = first
        .scored
        .iter()
        .map(|r| ScoreItem { path: r.path.clone(), content_hash: Some(r.content_hash.clone()), own_prompt: None })
        .collect();
    let t = worker.submit(request(known, second_prompt, Priority::Visible, true)).unwrap();
    let rerank = collect(&events, t);
    assert_eq!(rerank.scored.len(), n);
    assert!(rerank.scored.iter().all(|r| r.source == ScoreSource::CachedTokens), "{rerank:?}");
    assert_eq!(worker.stats().image_tower_images.load(Ordering::Relaxed), n as u64, "the image tower ran");
    assert_eq!(worker.stats().cached_token_images.load(Ordering::Relaxed), n as u64);
    let reference = reference_rewards(1);
    let reranked = by_name(&rerank.scored);
    for (name, score) in &reranked {
        assert!((score - reference[name]).abs() < CACHED_TOLERANCE, "{name}: {score} vs {}", reference[name]);
    }
    // Same order as the reference.
    let mut ours: Vec<&String> = reranked.keys().collect();
    ours.sort_by(|a, b| reranked[*b].total_cmp(&reranked[*a]));
    let mut theirs = ours.clone();
    theirs.sort_by(|a, b| reference[*b].total_cmp(&reference[*a]));
    assert_eq!(ours, theirs);
    worker.stop();

    // Across a restart, too.
    let (worker, events) = start(config(&s, 4));
    let t = worker.submit(request(files(&s.images), second_prompt, Priority::Library, false)).unwrap();
    let restarted = collect(&events, t);
    assert!(restarted.scored.iter().all(|r| r.source == ScoreSource::Stored));
    assert_eq!(worker.stats().image_tower_images.load(Ordering::Relaxed), 0);
}

#[test]
fn own_prompts_come_from_metadata_and_bad_files_are_reported_while_the_rest_are_scored() {
    let s = setup();
    std::fs::write(s.images.join("zero.png"), b"").unwrap();
    std::fs::write(s.images.join("text.png"), b"not an image").unwrap();
    let good = std::fs::read(fixtures().join("images/rgb_300x200.png")).unwrap();
    std::fs::write(s.images.join("cut.png"), &good[..good.len() / 2]).unwrap();
    let (worker, events) = start(config(&s, 3));
    let all = files(&s.images);
    let n = all.len();
    let t = worker
        .submit(ScoreRequest { items: all, prompt: None, priority: Priority::Library, supersede: false })
        .unwrap();
    let out = collect(&events, t);
    // Only the A1111 fixture carries a prompt; the others are reported as having none.
    let a1111 = out.scored.iter().find(|r| r.path.ends_with("a1111_params.png")).expect("the A1111 image is scored");
    assert!(!a1111.prompt.is_empty());
    assert_eq!(out.scored.len() + out.failed.len(), n);
    let reason = |name: &str| out.failed.iter().find(|(p, _)| p.ends_with(name)).map(|(_, r)| r.clone()).unwrap();
    assert!(reason("zero.png").contains("empty"), "{}", reason("zero.png"));
    assert!(reason("text.png").contains("not a PNG"), "{}", reason("text.png"));
    assert!(reason("cut.png").contains("cut.png"), "{}", reason("cut.png"));
    assert!(reason("rgb_300x200.png").contains("prompt"), "{}", reason("rgb_300x200.png"));
    // The failures are typed, so a UI can mark each cell, and carry the hash once the file was read.
    let failure = |name: &str| out.failures.iter().find(|f| f.path.ends_with(name)).unwrap();
    assert_eq!(failure("zero.png").error, ItemError::Image(ImageFileErrorKind::Empty));
    assert_eq!(failure("text.png").error, ItemError::Image(ImageFileErrorKind::UnsupportedFormat));
    assert!(failure("zero.png").content_hash.is_none());
    assert_eq!(failure("cut.png").error, ItemError::Image(ImageFileErrorKind::Truncated));
    let no_prompt = failure("rgb_300x200.png");
    assert_eq!(no_prompt.error, ItemError::NoPrompt(NoPrompt::NoMetadata));
    assert_eq!(no_prompt.content_hash, Some(ContentHash::of(&good)));
}

#[test]
fn a_file_the_library_imported_is_not_hashed_or_parsed_again() {
    use rewardlens::library::scan::{ScanOptions, scan_folders};
    let s = setup();
    let synthetic = s._tmp.path().join("synthetic");
    std::fs::create_dir(&synthetic).unwrap();
    rewardlens::synthetic::write_synthetic_pngs(&synthetic, 3).unwrap();
    let mut store = Store::open(&s.db).unwrap();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    scan_folders(&mut store, std::slice::from_ref(&synthetic), &ScanOptions { threads: 1 }, |_| {}, &cancel).unwrap();
    // Mark what only the library knows: a scoring run that parsed the files would not see it.
    let known = synthetic.join("img_000001.png");
    drop(store);
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    conn.execute("UPDATE images SET prompt = 'known to the library' WHERE path = ?1", [known.to_str().unwrap()])
        .unwrap();
    drop(conn);
    let changed = synthetic.join("img_000002.png");
    // A file rewritten after the import is read afresh.
    let original = std::fs::read(&changed).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&changed, &original).unwrap();

    let (worker, events) = start(config(&s, 4));
    let items = [&known, &changed].into_iter().map(|p| ScoreItem::file(p.clone())).collect();
    let t = worker.submit(ScoreRequest { items, prompt: None, priority: Priority::Library, supersede: false }).unwrap();
    let out = collect(&events, t);
    let prompt_of = |path: &Path| out.scored.iter().find(|r| r.path == path).map(|r| r.prompt.clone()).unwrap();
    assert_eq!(prompt_of(&known), "known to the library");
    assert_eq!(prompt_of(&changed), "synthetic image 2");
}

#[test]
fn superseded_work_is_dropped_without_draining_the_queue() {
    let s = setup();
    let (worker, events) = start(config(&s, 2));
    worker.pause().unwrap();
    let old_view = worker.submit(request(files(&s.images), "old prompt", Priority::View, false)).unwrap();
    let background = worker.submit(request(files(&s.images), "library", Priority::Library, false)).unwrap();
    let new_view =
        worker.submit(request(files(&s.images)[..2].to_vec(), "new prompt", Priority::Visible, true)).unwrap();
    worker.resume().unwrap();
    let mut finished = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut order = Vec::new();
    let mut trace = Vec::new();
    while finished.len() < 3 && Instant::now() < deadline {
        match events.recv_timeout(Duration::from_secs(5)) {
            Ok(ScoringEvent::Finished { ticket, scored, dropped, .. }) => {
                finished.insert(ticket, (scored, dropped));
            }
            Ok(ScoringEvent::Scored(batch)) => {
                for r in batch {
                    trace.push(format!("{}:{:?}", r.ticket, r.source));
                    order.push(r.ticket);
                }
            }
            // Batch boundaries, for the failure message.
            Ok(ScoringEvent::Progress(_)) => trace.push("|".to_string()),
            _ => {}
        }
    }
    let n = files(&s.images).len();
    // While paused nothing ran, so the old view's work was all stale by the time it was met;
    // up to a lookahead of its items may have been prepared before the pause took effect.
    let (old_scored, old_dropped) = finished[&old_view];
    assert_eq!(old_scored + old_dropped, n);
    assert!(old_dropped >= n - 4, "old view: scored {old_scored}, dropped {old_dropped}");
    assert_eq!(finished[&new_view], (2, 0));
    assert_eq!(finished[&background], (n, 0), "library work is never superseded");
    // The visible request ran before the background library.
    let first_background = order.iter().position(|t| *t == background).unwrap();
    let last_visible = order.iter().rposition(|t| *t == new_view).unwrap();
    assert!(last_visible < first_background, "{order:?} {trace:?}");
}

#[test]
fn a_model_that_fails_to_load_fails_its_jobs_and_another_model_recovers() {
    let s = setup();
    let mut cfg = config(&s, 4);
    cfg.model.path = s._tmp.path().join("no-such-model");
    let (worker, events) = ScoringWorker::start(cfg).unwrap();
    let reason = loop {
        if let ScoringEvent::Model(ModelState::Failed { error, .. }) =
            events.recv_timeout(Duration::from_secs(30)).unwrap()
        {
            break error.to_string();
        }
    };
    assert!(reason.contains("no-such-model"), "{reason}");
    let t = worker.submit(request(files(&s.images), "x", Priority::Library, false)).unwrap();
    let out = collect(&events, t);
    assert!(out.scored.is_empty());
    assert!(out.failed.iter().all(|(_, r)| r.contains("no model")), "{:?}", out.failed);

    worker.set_model(ModelSpec::auto(&fixtures().join("tiny-st"))).unwrap();
    let t = worker.submit(request(files(&s.images), "x", Priority::Library, false)).unwrap();
    let out = collect(&events, t);
    assert_eq!(out.scored.len(), files(&s.images).len());
}

#[test]
fn asking_for_an_unavailable_gpu_falls_back_to_the_cpu_and_says_why() {
    if cfg!(any(feature = "cuda", feature = "metal")) {
        return;
    }
    let s = setup();
    let mut cfg = config(&s, 4);
    cfg.model.device = DeviceKind::Cuda;
    cfg.model.dtype = Some(Precision::F16);
    let (worker, events) = ScoringWorker::start(cfg).unwrap();
    loop {
        match events.recv_timeout(Duration::from_secs(30)).unwrap() {
            ScoringEvent::Model(ModelState::Ready { device, dtype, note, .. }) => {
                assert_eq!((device, dtype), (DeviceKind::Cpu, Precision::F32));
                let note = note.unwrap();
                assert!(note.contains("CUDA") && note.contains("CPU"), "{note}");
                break;
            }
            ScoringEvent::Model(ModelState::Failed { error, .. }) => panic!("{error}"),
            _ => {}
        }
    }
    let t = worker.submit(request(files(&s.images), "x", Priority::Library, false)).unwrap();
    assert_eq!(collect(&events, t).scored.len(), files(&s.images).len());
}

#[test]
fn killing_a_scoring_run_leaves_the_store_and_the_cache_consistent() {
    let s = setup();
    let many = s._tmp.path().join("many");
    std::fs::create_dir(&many).unwrap();
    rewardlens::synthetic::write_synthetic_pngs_sized(&many, 400, 96).unwrap();
    let mut child = crate::util::rewardlens_command()
        .args(["score", "--model", &fixtures().join("tiny-st").display().to_string(), "--device", "cpu"])
        .args(["--batch", "4", "--prompt", "kill me", "--db", &s.db.display().to_string()])
        .args(["--cache-dir", &s.cache.display().to_string(), &many.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let id = model_id(&fixtures().join("tiny-st/model.safetensors")).unwrap();
    // Kill it (SIGKILL: no clean-up at all) as soon as the first scores are in.
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = |db: &Path| -> i64 {
        let Ok(store) = Store::open(db) else { return 0 };
        store.scored_count(&id).unwrap_or(0)
    };
    while count(&s.db) < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let before = count(&s.db);
    assert!(before > 0);
    assert!(!status.success(), "the run finished before it could be killed");
    assert!(before < 400, "all {before} were scored before the kill");

    // The database is whole.
    let store = Store::open(&s.db).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    // Every cache entry under a real name is whole (a half-written one has a temporary name).
    let cache = EmbeddingCache::open(&s.cache, &id, 1 << 30).unwrap();
    let mut entries = 0;
    for shard in std::fs::read_dir(s.cache.join(&id)).unwrap() {
        for entry in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let hash = name.strip_suffix(".emb").and_then(ContentHash::parse).expect("only entries are left");
            assert!(cache.get(&hash).is_some(), "damaged cache entry {name}");
            entries += 1;
        }
    }
    drop(cache);
    // A new run finishes the job, scoring only what was not saved.
    let mut cfg = config(&s, 4);
    cfg.model.path = fixtures().join("tiny-st");
    let (worker, events) = start(cfg);
    let t = worker.submit(request(files(&many), "kill me", Priority::Library, false)).unwrap();
    let out = collect(&events, t);
    assert_eq!(out.scored.len(), 400);
    let stored = out.scored.iter().filter(|r| r.source == ScoreSource::Stored).count();
    assert_eq!(stored as i64, before);
    assert!(worker.stats().image_tower_images.load(Ordering::Relaxed) as usize <= 400 - stored);
    assert!(entries > 0, "no cache entry was written in {before} scores");
}

#[test]
fn the_gpu_helper_protocol_round_trips_pixels_and_cached_tokens() {
    use rewardlens::scoring::remote::GpuHelper;
    let spec = ModelSpec { path: fixtures().join("tiny-st"), device: DeviceKind::Cpu, dtype: None, batch: Some(4) };
    let mut helper = GpuHelper::start(Path::new(env!("CARGO_BIN_EXE_rewardlens")), &spec).unwrap();
    assert_eq!((helper.device(), helper.precision(), helper.batch()), (DeviceKind::Cpu, Precision::F32, 4));
    assert_eq!(helper.model_id(), model_id(&fixtures().join("tiny-st/model.safetensors")).unwrap());
    let e = expected();
    let images: Vec<_> = e.images.iter().enumerate().filter(|(_, i)| !i.is_jpeg()).take(3).collect();
    let pixels: Vec<Vec<f32>> = images
        .iter()
        .map(|(_, i)| rewardlens::model::preprocess::preprocess_path(&fixtures().join(&i.file)).unwrap())
        .collect();
    let refs: Vec<&[f32]> = pixels.iter().map(Vec::as_slice).collect();
    let prompt = helper.tokenizer().encode(&e.prompts[2].text).unwrap();
    let (scores, embeddings) = helper.score_pixels(std::slice::from_ref(&prompt), &refs).unwrap();
    for ((index, _), score) in images.iter().zip(&scores) {
        assert!((score - e.rewards[*index][2]).abs() < 1e-4);
    }
    let other = helper.tokenizer().encode(&e.prompts[3].text).unwrap();
    let cached: Vec<_> = embeddings.iter().collect();
    let reranked = helper.score_embeddings(std::slice::from_ref(&other), &cached).unwrap();
    for ((index, _), score) in images.iter().zip(&reranked) {
        assert!((f64::from(*score) - f64::from(e.rewards[*index][3])).abs() < CACHED_TOLERANCE);
    }
}

/// A stand-in for the GPU helper on a machine without the NVIDIA driver: the dynamic loader
/// refuses to start it, as it refuses a CUDA build there.
#[cfg(unix)]
fn driverless_helper(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("rewardlens-gpu");
    std::fs::write(
        &path,
        "#!/bin/sh\necho 'rewardlens-gpu: error while loading shared libraries: libcuda.so.1: cannot open shared object file: No such file or directory' >&2\nexit 127\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[cfg(unix)]
#[test]
fn without_a_driver_the_app_starts_and_scores_on_the_cpu_saying_why() {
    let s = setup();
    let helper = driverless_helper(s._tmp.path());
    let out = crate::util::rewardlens_command()
        .env(rewardlens::scoring::remote::HELPER_ENV, &helper)
        .args(["score", "--model", &fixtures().join("tiny-st").display().to_string(), "--prompt", "a red cube"])
        .args(["--no-store", "--no-cache", &s.images.display().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("libcuda.so.1") && stderr.contains("scoring on the CPU"), "{stderr}");
    assert!(stderr.contains("scoring on cpu in f32"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1 + files(&s.images).len());
}

#[cfg(unix)]
#[test]
fn a_helper_that_crashes_mid_run_hands_over_to_the_cpu_and_the_run_completes() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    // The real binary as the helper, serving on the CPU, aborting after two batches.
    let wrapper = s._tmp.path().join("crashing-helper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport {}=cpu {}=2\nexec '{}' \"$@\"\n",
            rewardlens::scoring::remote::DEVICE_OVERRIDE_ENV,
            rewardlens::scoring::remote::CRASH_AFTER_ENV,
            env!("CARGO_BIN_EXE_rewardlens")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = crate::util::rewardlens_command()
        .env(rewardlens::scoring::remote::HELPER_ENV, &wrapper)
        .args(["score", "--model", &fixtures().join("tiny-st").display().to_string(), "--prompt", "a red cube"])
        .args(["--batch", "2", "--no-store", "--no-cache", "--json", &s.images.display().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("scoring on cpu in f32, batch 2"), "the helper served first: {stderr}");
    assert!(stderr.contains("simulated GPU crash") && stderr.contains("now scoring on the CPU"), "{stderr}");
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, files(&s.images).len(), "every image was scored");
}

#[test]
fn prompts_the_model_reads_alike_share_one_score() {
    let s = setup();
    let (worker, events) = start(config(&s, 4));
    let n = files(&s.images).len();
    let t = worker.submit(request(files(&s.images), "a red cube", Priority::Library, false)).unwrap();
    let first = collect(&events, t);
    assert_eq!(first.scored.len(), n);
    let computed = worker.stats().image_tower_images.load(Ordering::Relaxed)
        + worker.stats().cached_token_images.load(Ordering::Relaxed);
    // Case, spacing and accents the tokenizer drops: the stored scores answer, nothing runs.
    let t = worker.submit(request(files(&s.images), "  A RED   Cube ", Priority::Library, false)).unwrap();
    let again = collect(&events, t);
    assert!(again.scored.iter().all(|r| r.source == ScoreSource::Stored), "{:?}", again.scored);
    assert_eq!(by_name(&again.scored), by_name(&first.scored));
    let after = worker.stats().image_tower_images.load(Ordering::Relaxed)
        + worker.stats().cached_token_images.load(Ordering::Relaxed);
    assert_eq!(after, computed, "nothing was scored twice");
}

#[test]
fn a_view_is_scored_by_the_worker_enumerating_it_and_the_owner_is_woken() {
    use rewardlens::library::scan::{ScanOptions, scan_folders};
    use rewardlens::library::views::{ScoreStatus, ViewQuery};
    let s = setup();
    let synthetic = s._tmp.path().join("synthetic");
    std::fs::create_dir(&synthetic).unwrap();
    rewardlens::synthetic::write_synthetic_pngs(&synthetic, 12).unwrap();
    let mut store = Store::open(&s.db).unwrap();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    scan_folders(&mut store, std::slice::from_ref(&synthetic), &ScanOptions { threads: 1 }, |_| {}, &cancel).unwrap();
    let wakes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&wakes);
    let mut cfg = config(&s, 4);
    cfg.waker = Some(rewardlens::wake::Waker::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let (worker, events) = start(cfg);
    let t = worker.score_view(ViewQuery::default(), Priority::View, false).unwrap();
    let out = collect(&events, t);
    assert_eq!((out.scored.len(), out.failed.len()), (12, 0));
    assert!(wakes.load(Ordering::SeqCst) >= 3, "woken after events");
    // The view now shows every image scored against its own prompt.
    let id = model_id(&fixtures().join("tiny-st/model.safetensors")).unwrap();
    let query = ViewQuery { model_id: Some(id), ..ViewQuery::default() };
    let view = store.view(&query).unwrap();
    assert_eq!((view.len(), view.scored), (12, 12));
    let unscored = ViewQuery {
        filter: rewardlens::library::views::ViewFilter { status: Some(ScoreStatus::Unscored), ..Default::default() },
        ..query
    };
    assert!(store.view(&unscored).unwrap().is_empty());
    // Nothing is left: a second request is empty.
    let t = worker.score_view(ViewQuery::default(), Priority::View, false).unwrap();
    assert_eq!(collect(&events, t).scored.len(), 0);
}

#[test]
fn dropping_a_busy_worker_returns_at_once_and_the_worker_stops_after_its_batch() {
    let s = setup();
    let many = s._tmp.path().join("many");
    std::fs::create_dir(&many).unwrap();
    rewardlens::synthetic::write_synthetic_pngs_sized(&many, 300, 96).unwrap();
    let (worker, events) = start(config(&s, 16));
    worker.submit(request(files(&many), "busy", Priority::Library, false)).unwrap();
    // A batch has run and more are queued: the worker is in the middle of its run.
    loop {
        if let ScoringEvent::Progress(_) = events.recv_timeout(Duration::from_secs(60)).unwrap() {
            break;
        }
    }
    let started = Instant::now();
    drop(worker);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(50), "drop waited {took:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(ScoringEvent::Stopped) => break,
            Ok(_) => {}
            Err(e) => panic!("the worker did not stop: {e}"),
        }
        assert!(Instant::now() < deadline, "the worker did not stop");
    }
}

#[test]
fn scores_from_a_v1_library_are_re_keyed_when_their_model_loads_and_never_recomputed() {
    let s = setup();
    let id = model_id(&fixtures().join("tiny-st/model.safetensors")).unwrap();
    // First score everything into a current store, then rewrite it as schema v1 would have held it.
    let (worker, events) = start(config(&s, 4));
    let t = worker.submit(request(files(&s.images), "a red cube", Priority::Library, false)).unwrap();
    let first = collect(&events, t);
    worker.stop();
    {
        let conn = rusqlite::Connection::open(&s.db).unwrap();
        conn.execute_batch(
            "INSERT INTO legacy_scores (content_hash, model_id, prompt, value, scored_at)
                 SELECT content_hash, model_id, 'A Red Cube', value, scored_at FROM scores;
             DELETE FROM scores; DELETE FROM prompt_tokens;",
        )
        .unwrap();
        let legacy: i64 = conn.query_row("SELECT count(*) FROM legacy_scores", [], |r| r.get(0)).unwrap();
        assert_eq!(legacy as usize, first.scored.len());
    }
    let (worker, events) = start(config(&s, 4));
    let t = worker.submit(request(files(&s.images), "a red cube", Priority::Library, false)).unwrap();
    let again = collect(&events, t);
    assert!(again.scored.iter().all(|r| r.source == ScoreSource::Stored), "{:?}", again.scored);
    assert_eq!(by_name(&again.scored), by_name(&first.scored));
    let store = Store::open(&s.db).unwrap();
    assert!(store.legacy_scores(&id, 10).unwrap().is_empty(), "every legacy score was re-keyed");
    assert_eq!(store.last_model_id().unwrap(), Some(id));
}
