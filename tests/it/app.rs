//! The desktop app driven for real with egui_kittest: the real `App` with its real workers on a
//! fixture library scored by the tiny fixture model; keys, clicks, pasted text and dropped files
//! go in as a user's would, and the library database is checked afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use rewardlens::library::store::Store;
use rewardlens::library::watch::WatchOptions;
use rewardlens::ui::{App, AppConfig, ModelStatus, Screen};

use crate::util::fixtures;

/// A fixture library in a temporary folder and an app configuration pointing everything there.
struct Fixture {
    tmp: tempfile::TempDir,
    images: PathBuf,
    config: AppConfig,
}

fn fixture(count: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    rewardlens::synthetic::write_fixture_library(&images, count, 12, 48).unwrap();
    let config = AppConfig {
        db: tmp.path().join("library.sqlite3"),
        model: Some(fixtures().join("tiny-st")),
        folders: vec![images.clone()],
        settings_path: Some(tmp.path().join("config").join("settings.json")),
        thumb_cache_dir: tmp.path().join("thumbs"),
        embedding_cache_dir: Some(tmp.path().join("embeddings")),
        watch: WatchOptions {
            debounce: Duration::from_millis(50),
            settle: Duration::from_millis(150),
            folder_poll: Duration::from_millis(200),
            ..WatchOptions::default()
        },
        thumb_threads: 2,
        bench: None,
        model_search: None,
        hub: None,
    };
    Fixture { tmp, images, config }
}

fn harness(config: AppConfig) -> Harness<'static, App> {
    Harness::builder().with_size(egui::vec2(1280.0, 800.0)).build_eframe(move |cc| App::new(cc, config).unwrap())
}

/// Runs frames until `done` holds (the workers answer on their own threads), or fails after 60 s.
fn run_until(h: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        h.step();
        if done(h.state()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let messages: Vec<String> = h.state().messages().iter().map(|m| m.text.clone()).collect();
    panic!("timed out waiting for: {what}; app: {:?}; messages: {messages:#?}", h.state());
}

fn press(h: &mut Harness<'static, App>, key: Key) {
    h.key_press(key);
    h.step();
    h.step();
}

/// Waits for the whole fixture to be listed and scored by the tiny model.
fn wait_scored(h: &mut Harness<'static, App>, count: usize) {
    run_until(h, "every image listed and scored", |app| {
        matches!(app.model_status(), ModelStatus::Ready { .. })
            && app.view().len() == count
            && app.view().scored == count
    });
}

fn rewards(app: &App) -> Vec<f32> {
    app.view().entries.iter().map(|e| e.reward.unwrap()).collect()
}

fn content_hash_at(h: &Harness<'static, App>, index: usize) -> rewardlens::image_file::ContentHash {
    let id = h.state().view().entries[index].image_id;
    h.state().row(id).and_then(|r| r.content_hash.clone()).unwrap()
}

#[test]
fn the_grid_ranks_by_reward_and_the_keyboard_walks_it_into_the_viewer_and_back() {
    let fx = fixture(36);
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 36);
    let r = rewards(h.state());
    assert!(r.windows(2).all(|w| w[0] >= w[1]), "best first: {r:?}");
    // Percentiles: the best image is at the top of the view.
    assert_eq!(h.state().view().entries[0].percentile, Some(100.0));
    run_until(&mut h, "rows of the first screen", |app| app.row(app.view().entries[0].image_id).is_some());
    // The cell of the best image is on screen with its accessible name (its file name).
    let first = h.state().row(h.state().view().entries[0].image_id).unwrap().path.clone();
    h.get_by_label_contains(&format!("{} · ", first.file_name().unwrap().to_string_lossy()));

    press(&mut h, Key::ArrowRight);
    assert_eq!(h.state().cursor(), 1);
    press(&mut h, Key::ArrowDown);
    let columns = h.state().cursor() - 1;
    assert!(columns >= 2, "a 1280-point window holds several columns, moved by {columns}");
    press(&mut h, Key::End);
    assert_eq!(h.state().cursor(), 35);
    press(&mut h, Key::Home);
    assert_eq!(h.state().cursor(), 0);
    h.key_press_modifiers(Modifiers::SHIFT, Key::ArrowRight);
    h.step();
    h.step();
    assert_eq!(h.state().selected().len(), 2, "Shift+→ extends the selection");

    press(&mut h, Key::Enter);
    assert_eq!(h.state().screen(), Screen::Viewer);
    press(&mut h, Key::ArrowRight);
    assert_eq!(h.state().cursor(), 2);
    h.get_by_label("Image viewer");
    press(&mut h, Key::Escape);
    assert_eq!(h.state().screen(), Screen::Grid);
    assert_eq!(h.state().cursor(), 2, "back at the same position");
}

#[test]
fn favorite_and_rating_keys_are_stored_in_the_library() {
    let fx = fixture(24);
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 24);
    run_until(&mut h, "rows", |app| app.row(app.view().entries[0].image_id).is_some());
    let hash = content_hash_at(&h, 0);
    press(&mut h, Key::F);
    press(&mut h, Key::Num3);
    run_until(&mut h, "favorite and rating shown", |app| {
        app.row(app.view().entries[0].image_id).is_some_and(|r| r.favorite && r.rating == Some(3))
    });
    let store = Store::open(&fx.config.db).unwrap();
    assert!(store.is_favorite(&hash).unwrap());
    assert_eq!(store.rating(&hash).unwrap().unwrap().overall, Some(3));
    press(&mut h, Key::Num0);
    press(&mut h, Key::F);
    run_until(&mut h, "cleared", |app| {
        app.row(app.view().entries[0].image_id).is_some_and(|r| !r.favorite && r.rating.is_none())
    });
    assert!(!store.is_favorite(&hash).unwrap());
}

#[test]
fn a_selection_larger_than_the_rows_held_is_favorited_whole() {
    let mut fx = fixture(300);
    fx.config.model = None;
    let mut h = harness(fx.config.clone());
    run_until(&mut h, "every image listed", |app| app.view().len() == 300 && app.view_settled());
    run_until(&mut h, "rows", |app| app.row(app.view().entries[0].image_id).is_some());
    h.key_press_modifiers(Modifiers::SHIFT, Key::End);
    h.step();
    h.step();
    let app = h.state();
    assert_eq!(app.selected().len(), 300);
    let held = app.view().entries.iter().filter(|e| app.row(e.image_id).is_some()).count();
    assert!(held < 300, "the test needs rows the app does not hold ({held} held)");
    press(&mut h, Key::F);
    let favorites = |db: &Path| {
        let query = rewardlens::library::views::ViewQuery {
            filter: rewardlens::library::views::ViewFilter { favorites: true, ..Default::default() },
            ..Default::default()
        };
        Store::open(db).unwrap().view(&query).unwrap().len()
    };
    let db = fx.config.db.clone();
    run_until(&mut h, "all 300 favorites stored", |_| favorites(&db) == 300);
    // Again: all are favorites now, so F takes them all back.
    press(&mut h, Key::F);
    run_until(&mut h, "no favorite left", |_| favorites(&db) == 0);
}

#[test]
fn a_prompt_group_shows_its_images_ranked_with_the_best_marked() {
    let fx = fixture(36);
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 36);
    run_until(&mut h, "prompt groups", |app| app.prompt_groups().len() == 12);
    let group = h.state().prompt_groups().iter().find(|g| g.prompt.starts_with("a red fox")).unwrap().clone();
    let title: String = group.prompt.chars().take(20).collect();
    h.get_by_label_contains(&title).click();
    run_until(&mut h, "the group's view", |app| app.view().len() == group.images && app.view_settled());
    let r = rewards(h.state());
    assert!(r.windows(2).all(|w| w[0] >= w[1]));
    assert_eq!(h.state().view().len(), 3);
    h.get_by_label_contains("top 1 of 3");
    press(&mut h, Key::Escape);
    run_until(&mut h, "back to all images", |app| app.view().len() == 36);
}

#[test]
fn rerank_by_a_pasted_prompt_then_by_a_dropped_text_file_then_back() {
    let fx = fixture(24);
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 24);
    let own_order: Vec<i64> = h.state().view().entries.iter().map(|e| e.image_id).collect();

    h.get_by_label("Rerank by prompt").click();
    h.step();
    h.event(egui::Event::Paste("a lighthouse in a storm".into()));
    run_until(&mut h, "the rerank by the pasted prompt", |app| {
        app.rerank().is_some_and(|r| r.prompt == "a lighthouse in a storm")
            && app.view().scored == 24
            && app.view_settled()
    });
    let r = rewards(h.state());
    assert!(r.windows(2).all(|w| w[0] >= w[1]));
    let reranked: Vec<i64> = h.state().view().entries.iter().map(|e| e.image_id).collect();
    assert_ne!(reranked, own_order, "another prompt ranks differently");

    let prompt_file = fx.tmp.path().join("prompt.txt");
    std::fs::write(&prompt_file, "portrait of an astronaut\n").unwrap();
    h.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(prompt_file)));
    run_until(&mut h, "the rerank by the dropped file", |app| {
        app.rerank().is_some_and(|r| r.prompt == "portrait of an astronaut")
            && app.view().scored == 24
            && app.view_settled()
    });

    h.get_by_label("✖").click();
    run_until(&mut h, "back to own prompts", |app| app.rerank().is_none() && app.view_settled());
    let back: Vec<i64> = h.state().view().entries.iter().map(|e| e.image_id).collect();
    assert_eq!(back, own_order);
}

/// A file dropped on the window, as winit delivers it: a path.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Set in the child process that runs the trash test with its own `XDG_DATA_HOME`.
const TRASH_CHILD: &str = "REWARDLENS_APP_TRASH_ROOT";

#[test]
fn delete_asks_then_moves_the_file_to_the_trash() {
    let Some(data_home) = std::env::var_os(TRASH_CHILD).map(PathBuf::from) else {
        // The system trash follows XDG_DATA_HOME: run the body in a child process with a private
        // one, so the user's trash is untouched and this process's environment never changes.
        let tmp = tempfile::tempdir().unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["app::delete_asks_then_moves_the_file_to_the_trash", "--exact", "--nocapture"])
            .env(TRASH_CHILD, tmp.path())
            .env("XDG_DATA_HOME", tmp.path())
            .status()
            .unwrap();
        assert!(status.success());
        return;
    };
    let fx = fixture(12);
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 12);
    run_until(&mut h, "rows", |app| app.row(app.view().entries[0].image_id).is_some());
    let victim = h.state().row(h.state().view().entries[0].image_id).unwrap().path.clone();
    press(&mut h, Key::Delete);
    // Nothing happens before the user says yes.
    assert!(victim.exists());
    h.get_by_label("Move to trash").click();
    run_until(&mut h, "the file gone from the view", |app| app.view().len() == 11);
    assert!(!victim.exists());
    let trashed = data_home.join("Trash").join("files").join(victim.file_name().unwrap());
    assert!(trashed.exists(), "in the trash, not deleted: {}", trashed.display());
    let store = Store::open(&fx.config.db).unwrap();
    assert!(store.image_by_path(&victim).unwrap().unwrap().missing);
}

#[test]
fn removing_a_folder_while_shown_empties_the_view_and_leaves_the_files() {
    let fx = fixture(12);
    let mut h = harness(fx.config.clone());
    run_until(&mut h, "the folder listed", |app| app.view().len() == 12 && app.folders().len() == 1);
    h.get_by_label(&format!("Remove {}", fx.images.display())).click();
    run_until(&mut h, "the view empty", |app| app.view().is_empty() && app.folders().is_empty());
    assert_eq!(std::fs::read_dir(&fx.images).unwrap().count(), 12, "the files are untouched");
    // The welcome screen says what to do.
    h.get_by_label("Welcome to RewardLens");
}

#[test]
fn no_model_a_corrupt_image_and_a_damaged_settings_file_each_say_so_and_the_app_goes_on() {
    let mut fx = fixture(6);
    fx.config.model = None;
    std::fs::write(fx.images.join("zz-corrupt.png"), b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let settings = fx.config.settings_path.clone().unwrap();
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, b"{ not json").unwrap();
    let mut h = harness(fx.config.clone());
    // The corrupt file is listed too, as an unreadable cell.
    run_until(&mut h, "the images listed", |app| app.view().len() == 7);
    assert!(matches!(h.state().model_status(), ModelStatus::Missing));
    h.get_by_label("Scores need the ImageReward model (1.8 GB).");
    run_until(&mut h, "messages about the settings and the corrupt file", |app| {
        let texts: Vec<&str> = app.messages().iter().map(|m| m.text.as_str()).collect();
        texts.iter().any(|t| t.contains("damaged")) && texts.iter().any(|t| t.contains("zz-corrupt.png"))
    });
    assert!(Path::new(&settings.with_extension("json.damaged")).exists(), "the damaged file is kept aside");

    // A model folder that cannot load: a message, a banner, and browsing goes on.
    let empty_model = fx.tmp.path().join("not-a-model");
    std::fs::create_dir(&empty_model).unwrap();
    h.state_mut().command(rewardlens::ui::Command::AddFolder(fx.images.clone()));
    let mut config = fx.config.clone();
    config.model = Some(empty_model);
    drop(h);
    let mut h = harness(config);
    run_until(&mut h, "the model failure", |app| matches!(app.model_status(), ModelStatus::Failed { .. }));
    h.get_by_label_contains("did not load");
    run_until(&mut h, "the images still listed", |app| app.view().len() == 7);
}

#[test]
fn a_prompt_chip_dragged_onto_the_rerank_box_reranks_by_it() {
    let fx = fixture(24);
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 24);
    // The details panel shows the cursor image's prompt with its chip.
    run_until(&mut h, "the chip", |app| app.row(app.view().entries[0].image_id).is_some());
    for _ in 0..20 {
        h.step();
        if h.query_by_label("Rerank by this prompt").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let prompt = h.state().row(h.state().view().entries[0].image_id).unwrap().prompt.clone().unwrap();
    let from = h.get_by_label("Rerank by this prompt").rect().center();
    let to = h.get_by_label("Rerank by prompt").rect().center();
    h.hover_at(from);
    h.step();
    h.drag_at(from);
    h.step();
    for i in 1..=10 {
        h.hover_at(from + (to - from) * (i as f32 / 10.0));
        h.step();
    }
    h.drop_at(to);
    h.step();
    run_until(&mut h, "the rerank by the dragged prompt", |app| app.rerank().is_some_and(|r| r.prompt == prompt));
}

#[test]
fn the_app_renders_with_wgpu_on_a_software_adapter() {
    let mut fx = fixture(0);
    fx.config.folders.clear();
    fx.config.model = None;
    let config = fx.config.clone();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1000.0, 700.0))
        .wgpu()
        .build_eframe(move |cc| App::new(cc, config).unwrap());
    run_until(&mut h, "the library opened", |app| app.view_settled());
    h.step();
    let image = h.render().expect("a wgpu adapter (Mesa's llvmpipe or lavapipe will do)");
    assert_eq!((image.width(), image.height()), (1000, 700));
    // Not one flat colour: panels, text and the drop zone are drawn.
    let first = image.get_pixel(0, 0).0;
    let differing = image.pixels().filter(|p| p.0 != first).count();
    assert!(differing > 10_000, "{differing} pixels differ from the corner");
    h.get_by_label("Welcome to RewardLens");
}

/// Cache folders in a private home: nothing of the user's own caches is seen.
fn private_caches(home: &Path) -> rewardlens::model::locate::CacheDirs {
    rewardlens::model::locate::CacheDirs { home: Some(home.to_path_buf()), ..Default::default() }
}

#[test]
fn a_model_in_the_image_reward_cache_is_used_without_a_question() {
    let mut fx = fixture(6);
    fx.config.model = None;
    let home = fx.tmp.path().join("home");
    let cache = home.join(".cache/ImageReward");
    std::fs::create_dir_all(&cache).unwrap();
    for f in ["ImageReward.pt", "med_config.json", "vision_config.json"] {
        std::fs::copy(fixtures().join("tiny-pt").join(f), cache.join(f)).unwrap();
    }
    fx.config.model_search = Some(private_caches(&home));
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 6);
    assert!(h.state().settings().model_dir.is_none(), "found, not written into the settings");
    assert!(h.state().messages().iter().any(|m| m.text.contains("the ImageReward package's download folder")));
}

#[test]
fn the_banner_downloads_the_model_with_progress_then_scores_with_it() {
    use rewardlens::model::hub::test_hub::{Fault, LocalHub};
    let hub = LocalHub::start(None);
    hub.set_fault(Fault::Slow);
    let mut fx = fixture(6);
    fx.config.model = None;
    let home = fx.tmp.path().join("home");
    let dirs = private_caches(&home);
    fx.config.hub =
        rewardlens::model::hub::HubSettings::from_vars(|n| (n == "HF_ENDPOINT").then(|| hub.endpoint().into()), &dirs);
    fx.config.model_search = Some(dirs);
    let mut h = harness(fx.config.clone());
    run_until(&mut h, "nothing found", |app| matches!(app.fetch_state(), rewardlens::ui::FetchState::NotFound(_)));
    h.get_by_label("Download ImageReward (1.8 GB)").click();
    run_until(
        &mut h,
        "progress shown",
        |app| matches!(app.fetch_state(), rewardlens::ui::FetchState::Downloading(Some(p)) if p.done > 0),
    );
    h.get_by_label_contains("/s");
    // Cancel, then resume: the download goes on from where it stopped.
    h.get_by_label("Cancel").click();
    run_until(&mut h, "paused", |app| matches!(app.fetch_state(), rewardlens::ui::FetchState::Paused(_)));
    let sent = hub.cdn_bytes_sent();
    hub.set_fault(Fault::None);
    h.get_by_label("Resume download").click();
    wait_scored(&mut h, 6);
    assert!(hub.cdn_bytes_sent() - sent < hub.total_bytes(), "resumed, not fetched again from the start");
    assert!(home.join(".cache/huggingface/hub/models--THUDM--ImageReward/refs/main").is_file());
}

#[test]
fn the_export_dialog_copies_the_best_into_a_folder_with_a_manifest() {
    let fx = fixture(12);
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 12);
    run_until(&mut h, "rows", |app| app.row(app.view().entries[0].image_id).is_some());
    let best = h.state().row(h.state().view().entries[0].image_id).unwrap().path.clone();
    let out = fx.tmp.path().join("exported");
    h.get_by_label("Export…").click();
    for _ in 0..3 {
        h.step(); // a new window sizes itself on its first frame
    }
    h.get_by_label("Export folder").click();
    h.step();
    h.event(egui::Event::Paste(out.display().to_string()));
    h.step();
    h.get_by_label("Best images:").click(); // 50 by default: all 12 here
    h.step();
    h.get_by_label("Export").click();
    run_until(&mut h, "the export finished", |app| app.export_outcome().is_some());
    assert_eq!(h.state().export_outcome(), Some(Ok((12, 0, 0))));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let images = manifest["images"].as_array().unwrap();
    assert_eq!(images.len(), 12);
    assert_eq!(images[0]["source_path"].as_str().unwrap(), best.display().to_string());
    assert!(out.join(best.file_name().unwrap()).is_file());
    h.get_by_label_contains("Exported 12 · 0 already there · 0 failed");
    // Again: nothing is written twice.
    h.get_by_label("Export").click();
    run_until(&mut h, "the second export", |app| app.export_outcome() == Some(Ok((0, 12, 0))));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 12 + 2);
}

#[test]
fn cull_reviews_the_worst_then_trashes_them_in_one_step_keeping_favorites() {
    let Some(data_home) = std::env::var_os(TRASH_CHILD).map(PathBuf::from) else {
        let tmp = tempfile::tempdir().unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["app::cull_reviews_the_worst_then_trashes_them_in_one_step_keeping_favorites", "--exact"])
            .env(TRASH_CHILD, tmp.path())
            .env("XDG_DATA_HOME", tmp.path())
            .status()
            .unwrap();
        assert!(status.success());
        return;
    };
    let fx = fixture(20);
    let mut h = harness(fx.config.clone());
    wait_scored(&mut h, 20);
    // The worst image is a favorite: the cull keeps it.
    let worst = h.state().view().entries[19].image_id;
    h.state_mut().command(rewardlens::ui::Command::MoveCursor { index: 19, extend: false, toggle: false });
    h.step();
    press(&mut h, Key::F);
    run_until(&mut h, "the favorite stored", |app| app.row(worst).is_some_and(|r| r.favorite));
    let worst_path = h.state().row(worst).unwrap().path.clone();

    h.get_by_label("Cull…").click();
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Review").click(); // the worst 10 %: 2 of 20, less the favorite
    run_until(&mut h, "the review", |app| app.view_settled() && app.view().len() == 1);
    let victim_id = h.state().view().entries[0].image_id;
    run_until(&mut h, "its row", |app| app.row(victim_id).is_some());
    let victim = h.state().row(victim_id).unwrap().path.clone();
    h.get_by_label_contains("Cull review");
    h.get_by_label("Move 1 to the trash…").click();
    for _ in 0..500 {
        h.step();
        if h.query_by_label("Move to trash").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    h.get_by_label("Move to trash").click();
    run_until(&mut h, "the review empty", |app| app.view_settled() && app.view().is_empty());
    assert!(!victim.exists());
    assert!(data_home.join("Trash/files").join(victim.file_name().unwrap()).exists());
    assert!(worst_path.exists(), "the favorite stays");
    h.get_by_label("Done").click();
    run_until(&mut h, "the whole view back", |app| app.view_settled() && app.view().len() == 19);
}
