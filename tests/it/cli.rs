//! The `rewardlens` binary end to end: ranked output, per-file errors, clear failures.

use std::path::Path;
use std::process::{Command, Output};

use candle_core::Device;

use crate::util::{expected, fixtures};

fn rewardlens(args: &[&str]) -> Output {
    crate::util::rewardlens_command().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture(p: &str) -> String {
    fixtures().join(p).display().to_string()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn score_ranks_a_folder_best_first() {
    let out = rewardlens(&["score", "--model", &fixture("tiny-st"), "--prompt", "a red cube", &fixture("images")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    let e = expected();
    assert_eq!(rows.len(), e.images.len());
    // Prompt 0 is "a red cube": the best and worst images per the reference.
    assert!(rows[0].contains("exact_224x224.png"), "{stdout}");
    assert!(rows.last().unwrap().contains("grayjpeg_180x260.jpg"), "{stdout}");
    assert!(rows[0].trim_start().starts_with("1 "));
}

#[test]
fn score_json_matches_reference_rewards() {
    let e = expected();
    let out = rewardlens(&[
        "score",
        "--model",
        &fixture("tiny-pt"),
        "--json",
        "--batch",
        "4",
        "--prompt",
        &e.prompts[1].text,
        &fixture("images"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), e.images.len());
    let scores: Vec<f64> = lines.iter().map(|l| l["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "not sorted best first: {scores:?}");
    for line in &lines {
        let path = line["path"].as_str().unwrap();
        assert_eq!(line["prompt"].as_str().unwrap(), e.prompts[1].text);
        let i = e.images.iter().position(|img| path.ends_with(&img.file)).unwrap();
        let tolerance = if e.images[i].is_jpeg() { 5e-2 } else { 1e-4 };
        let d = (line["score"].as_f64().unwrap() - e.rewards[i][1] as f64).abs();
        assert!(d <= tolerance, "{path}: off by {d}");
    }
}

#[test]
fn score_without_prompt_reads_a1111_metadata_and_reports_the_rest() {
    let e = expected();
    let out = rewardlens(&["score", "--model", &fixture("tiny-st"), "--json", &fixture("images")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let want_prompt = e.a1111_parameters.split("\nNegative prompt:").next().unwrap();
    assert_eq!(lines[0]["prompt"].as_str().unwrap(), want_prompt);
    assert!(lines[0]["path"].as_str().unwrap().ends_with("a1111_params.png"));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("rgb_300x200.png: no prompt in its metadata"), "{stderr}");
}

#[test]
fn bad_files_are_reported_one_line_each_and_the_run_goes_on() {
    let out = rewardlens(&[
        "score",
        "--model",
        &fixture("tiny-st"),
        "--prompt",
        "x",
        &fixture("bad/truncated.png"),
        &fixture("bad/zero.png"),
        &fixture("bad/not_an_image.jpg"),
        &fixture("images/rgb_300x200.png"),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (bad, reason) in [
        ("truncated.png", "truncated: the file ends before the image does"),
        ("zero.png", "empty file (0 bytes)"),
        ("not_an_image.jpg", "not a PNG, JPEG or WebP"),
    ] {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(bad)).collect();
        assert_eq!(lines.len(), 1, "{bad}: {stderr}");
        assert!(lines[0].contains(reason), "{bad}: {stderr}");
        assert_eq!(lines[0].matches(bad).count(), 1, "path printed once: {stderr}");
    }
    assert_eq!(text(&out.stdout).lines().count(), 2);
    assert!(!stderr.contains("panicked"));
}

#[cfg(unix)]
#[test]
fn a_fifo_named_like_an_image_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::copy(fixtures().join("images/tiny_64x40.png"), dir.path().join("ok.png")).unwrap();
    // In a folder it is skipped; named explicitly it is one reported item.
    let d = dir.path().display().to_string();
    let f = fifo.display().to_string();
    let out = rewardlens(&["score", "--model", &fixture("tiny-st"), "--prompt", "x", &d, &f]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("pipe.png: not a regular file"), "{stderr}");
    assert_eq!(text(&out.stdout).lines().count(), 2);
}

#[test]
fn nothing_scored_is_a_failure_with_a_message() {
    let out = rewardlens(&["score", "--model", &fixture("tiny-st"), "--prompt", "x", &fixture("bad")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no image was scored"), "{}", text(&out.stderr));
}

fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "expected failure: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_weights_unknown_dtype_and_device_are_clear_errors() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("tiny-st/med_config.json"), empty.path().join("med_config.json")).unwrap();
    let image = fixture("images/rgb_300x200.png");
    let dir = empty.path().display().to_string();
    assert_fails_with(&rewardlens(&["score", "--model", &dir, "--prompt", "x", &image]), "model.safetensors or");
    let model = fixture("tiny-st");
    assert_fails_with(
        &rewardlens(&["score", "--model", &model, "--dtype", "f8", "--prompt", "x", &image]),
        "unknown dtype \"f8\"",
    );
    assert_fails_with(
        &rewardlens(&["score", "--model", &model, "--device", "tpu", "--prompt", "x", &image]),
        "expected auto, cpu, cuda or metal",
    );
}

/// A copy of the tiny model whose tensors went through `edit` before saving.
fn edited_model(edit: impl FnOnce(&mut std::collections::HashMap<String, candle_core::Tensor>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["med_config.json", "vision_config.json"] {
        std::fs::copy(fixtures().join("tiny-st").join(f), dir.path().join(f)).unwrap();
    }
    let mut tensors =
        candle_core::safetensors::load(fixtures().join("tiny-st/model.safetensors"), &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

fn score_with(model: &Path) -> Output {
    rewardlens(&["score", "--model", &model.display().to_string(), "--prompt", "x", &fixture("images/rgb_300x200.png")])
}

#[test]
fn a_missing_key_is_named() {
    let key = "blip.text_encoder.encoder.layer.1.crossattention.self.key.weight";
    let dir = edited_model(|t| {
        t.remove(key);
    });
    assert_fails_with(&score_with(dir.path()), &format!("weight `{key}` is missing"));
}

#[test]
fn a_wrong_shape_names_the_key_and_both_shapes() {
    let key = "blip.visual_encoder.blocks.0.mlp.fc1.weight";
    let dir = edited_model(|t| {
        let w = t[key].narrow(0, 0, 200).unwrap();
        t.insert(key.to_string(), w);
    });
    assert_fails_with(&score_with(dir.path()), &format!("weight `{key}`"));
    assert_fails_with(&score_with(dir.path()), "has shape [200, 64], the model expects [256, 64]");
}

#[test]
fn a_corrupt_weight_file_is_a_clear_error() {
    let dir = edited_model(|_| {});
    std::fs::write(dir.path().join("model.safetensors"), b"definitely not safetensors").unwrap();
    assert_fails_with(&score_with(dir.path()), "not a safetensors file");
    let pt = tempfile::tempdir().unwrap();
    for f in ["med_config.json", "vision_config.json"] {
        std::fs::copy(fixtures().join("tiny-st").join(f), pt.path().join(f)).unwrap();
    }
    std::fs::write(pt.path().join("ImageReward.pt"), b"PK\x03\x04 truncated").unwrap();
    assert_fails_with(&score_with(pt.path()), "not a PyTorch zip checkpoint");
}

/// A temporary library: the fixture images copied into a folder (never written in place), and the
/// database beside them.
struct Library {
    _dir: tempfile::TempDir,
    db: String,
    images: String,
}

fn library() -> Library {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for entry in std::fs::read_dir(fixtures().join("images")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, images.join(path.file_name().unwrap())).unwrap();
    }
    // Canonical, as `scan` stores it, so paths compare equal across commands.
    let images = std::fs::canonicalize(&images).unwrap().display().to_string();
    let db = dir.path().join("lib.sqlite3").display().to_string();
    let out = rewardlens(&["scan", "--db", &db, &images]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    Library { _dir: dir, db, images }
}

/// The fields `list --json` prints, a published format.
const LIST_FIELDS: [&str; 8] =
    ["path", "content_hash", "prompt", "checkpoint", "reward", "percentile", "rating", "favorite"];

fn assert_list_fields(lines: &[serde_json::Value]) {
    for line in lines {
        let mut keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = LIST_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{line}");
    }
}

/// `list --prompt` over stored scores ranks exactly as `score --json` did, and `list --model`
/// computes what is missing and ranks as `score` would.
#[test]
fn list_ranks_a_scored_prompt_as_score_did() {
    let lib = library();
    let model = fixture("tiny-st");
    let e = expected();
    let score = |prompt: &str| {
        let out = rewardlens(&["score", "--db", &lib.db, "--model", &model, "--prompt", prompt, "--json", &lib.images]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        json_lines(&out)
    };
    let list = |extra: &[&str]| {
        let mut args = vec!["list", "--db", &lib.db, "--json"];
        args.extend_from_slice(extra);
        let out = rewardlens(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let lines = json_lines(&out);
        assert_list_fields(&lines);
        lines
    };
    let same_ranking = |scored: &[serde_json::Value], listed: &[serde_json::Value]| {
        assert_eq!(listed.len(), e.images.len());
        let listed: Vec<&serde_json::Value> = listed.iter().filter(|l| !l["reward"].is_null()).collect();
        assert_eq!(listed.len(), scored.len());
        for (s, l) in scored.iter().zip(&listed) {
            assert_eq!(l["path"], s["path"]);
            let d = (l["reward"].as_f64().unwrap() - s["score"].as_f64().unwrap()).abs();
            assert!(d <= 1e-6, "{}: off by {d}", s["path"]);
        }
        assert_eq!(listed[0]["percentile"].as_f64(), Some(100.0));
        assert_eq!(listed.last().unwrap()["percentile"].as_f64(), Some(0.0));
    };

    let prompt = &e.prompts[0].text;
    let scored = score(prompt);
    same_ranking(&scored, &list(&["--prompt", prompt]));
    // A case and spacing variant reads the same stored scores.
    same_ranking(&scored, &list(&["--prompt", &format!("  {}", prompt.to_uppercase())]));

    // Scored here first, from cached image tokens; `score` then finds every score stored.
    let other = &e.prompts[1].text;
    let listed = list(&["--prompt", other, "--model", &model]);
    same_ranking(&score(other), &listed);
    let limited = list(&["--prompt", other, "--limit", "3"]);
    assert_eq!(limited, listed[..3]);
}

#[test]
fn list_without_a_prompt_shows_own_prompt_rewards_and_the_rest_unscored() {
    let lib = library();
    let out = rewardlens(&["list", "--db", &lib.db, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no model has scored this library yet; rewards are empty"));
    assert!(json_lines(&out).iter().all(|l| l["reward"].is_null()));

    let out = rewardlens(&["score", "--db", &lib.db, "--model", &fixture("tiny-st"), "--json", &lib.images]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let scored = json_lines(&out);
    assert_eq!(scored.len(), 1, "only the A1111 image carries a prompt");

    let out = rewardlens(&["list", "--db", &lib.db, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_list_fields(&lines);
    assert_eq!(lines.len(), expected().images.len());
    let best = &lines[0];
    assert_eq!(best["path"], scored[0]["path"]);
    assert!((best["reward"].as_f64().unwrap() - scored[0]["score"].as_f64().unwrap()).abs() <= 1e-6);
    assert_eq!(best["prompt"], scored[0]["prompt"]);
    assert_eq!(best["checkpoint"], "tinymodel");
    assert_eq!((best["percentile"].as_f64(), best["favorite"].as_bool()), (Some(100.0), Some(false)));
    assert!(best["content_hash"].as_str().is_some_and(|h| h.len() == 64));
    assert!(lines[1..].iter().all(|l| l["reward"].is_null() && l["percentile"].is_null() && l["rating"].is_null()));

    // The table: a header, then one line per image, best first.
    let out = rewardlens(&["list", "--db", &lib.db, "--checkpoint", "tinymodel"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.lines().nth(1).unwrap().contains("a1111_params.png"), "{stdout}");
    // Filters narrow: nothing is unscored among the scored, and the folder is known.
    let out = rewardlens(&["list", "--db", &lib.db, "--json", "--unscored", &lib.images]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_lines(&out).len(), lines.len() - 1);
}

#[test]
fn list_refuses_an_unknown_folder_a_missing_library_and_a_prompt_with_another_sort() {
    let lib = library();
    let nowhere = tempfile::tempdir().unwrap();
    let folder = nowhere.path().display().to_string();
    assert_fails_with(&rewardlens(&["list", "--db", &lib.db, &folder]), &format!("{folder} is not a watched folder"));
    let db = nowhere.path().join("none.sqlite3").display().to_string();
    assert_fails_with(&rewardlens(&["list", "--db", &db]), "no library database at");
    assert!(!nowhere.path().join("none.sqlite3").exists(), "listing creates no library");
    assert_fails_with(
        &rewardlens(&["list", "--db", &lib.db, "--prompt", "x", "--sort", "date"]),
        "cannot be combined with --sort date",
    );
    assert_fails_with(&rewardlens(&["list", "--db", &lib.db, "--min-score", "nan"]), "not a finite number");
}

#[test]
fn groups_prints_one_json_object_per_line_with_its_kind() {
    let lib = library();
    let model = fixture("tiny-st");
    let out = rewardlens(&["score", "--db", &lib.db, "--model", &model, "--json", &lib.images]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = rewardlens(&["groups", "--db", &lib.db, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let groups = json_lines(&out);
    assert_eq!(groups.len(), 1, "one image carries a prompt");
    let g = &groups[0];
    assert_eq!(g["kind"], "prompt_group");
    assert_eq!((g["images"].as_u64(), g["scored"].as_u64()), (Some(1), Some(1)));
    for key in ["group_key", "prompt", "best_reward", "best_image_id", "mean_reward", "std_reward"] {
        assert!(g.get(key).is_some(), "{key} in {g}");
    }

    let out = rewardlens(&["groups", "--db", &lib.db, "--by", "checkpoint", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let board = json_lines(&out);
    assert_eq!(board.len(), 1);
    assert_eq!((board[0]["kind"].as_str(), board[0]["checkpoint"].as_str()), (Some("checkpoint"), Some("tinymodel")));
    assert!(board[0]["ci95"].is_null(), "one scored image has no interval");

    // The tables print too.
    for by in ["prompt", "checkpoint"] {
        let out = rewardlens(&["groups", "--db", &lib.db, "--by", by]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).lines().count() >= 2, "{}", text(&out.stdout));
    }
}

#[test]
fn a_jpeg_cut_after_its_scan_header_is_reported_as_truncated_not_scored() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(fixtures().join("images/photo_512x384.jpg")).unwrap();
    // Past the headers and into the entropy-coded scan: a decoder would fill the rest in grey.
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).unwrap();
    std::fs::write(dir.path().join("whole.jpg"), &whole).unwrap();
    let out = rewardlens(&[
        "score",
        "--model",
        &fixture("tiny-st"),
        "--prompt",
        "x",
        "--no-store",
        "--no-cache",
        &dir.path().display().to_string(),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("cut.jpg")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("truncated"), "{stderr}");
    assert_eq!(text(&out.stdout).lines().count(), 2, "the whole JPEG alone is scored (header + 1 row)");
}

#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_scored_and_listed_and_the_run_goes_on() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("images/a1111_params.png");
    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    std::fs::copy(&source, &odd).unwrap();
    std::fs::copy(&source, dir.path().join("plain.png")).unwrap();
    let folder = dir.path().display().to_string();
    for args in [
        vec!["meta", "--json", &folder],
        vec!["score", "--model", &fixture("tiny-st"), "--json", "--no-store", "--no-cache", &folder],
    ] {
        let out = rewardlens(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 2, "{args:?}: {}", text(&out.stdout));
        let odd_line = lines.iter().find(|l| l.get("path_bytes").is_some()).expect("the odd name carries its bytes");
        assert!(odd_line["path"].as_str().unwrap().ends_with("caf\u{fffd}.png"), "{odd_line}");
        assert!(odd_line["path_bytes"].as_str().unwrap().ends_with("caf\\xe9.png"), "{odd_line}");
        assert!(
            lines.iter().any(|l| l["path"].as_str().unwrap().ends_with("plain.png") && l.get("path_bytes").is_none())
        );
    }
    // The library keeps the exact name: scanned, scored into the store, listed with its bytes.
    let db = dir.path().join("lib.sqlite3").display().to_string();
    let images = tempfile::tempdir().unwrap();
    let odd_in_library = images.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    std::fs::rename(&odd, &odd_in_library).unwrap();
    std::fs::rename(dir.path().join("plain.png"), images.path().join("plain.png")).unwrap();
    let folder = images.path().display().to_string();
    for args in [
        vec!["scan", "--db", &db, &folder],
        vec!["score", "--model", &fixture("tiny-st"), "--db", &db, "--no-cache", &folder],
        vec!["list", "--db", &db, "--json"],
    ] {
        let out = rewardlens(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        if args[0] == "list" {
            let lines = json_lines(&out);
            assert_eq!(lines.len(), 2, "{}", text(&out.stdout));
            let odd_line =
                lines.iter().find(|l| l.get("path_bytes").is_some()).expect("the odd name carries its bytes");
            assert!(odd_line["path_bytes"].as_str().unwrap().ends_with("caf\\xe9.png"), "{odd_line}");
            assert!(lines.iter().all(|l| l["reward"].is_number()), "both scored and stored: {lines:?}");
        }
    }
}

/// `rewardlens` with a private home and the hub at `endpoint`: nothing of the user's caches is seen.
fn with_home(home: &Path, endpoint: &str) -> Command {
    let mut cmd = crate::util::rewardlens_command();
    cmd.env("HOME", home).env("HF_ENDPOINT", endpoint);
    for var in ["HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME", "HF_TOKEN"] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn a_downloaded_model_is_found_and_scores_like_the_fixture() {
    use rewardlens::model::hub::test_hub::LocalHub;
    let hub = LocalHub::start(None);
    let home = tempfile::tempdir().unwrap();
    let none = with_home(home.path(), &hub.endpoint()).args(["model", "path"]).output().unwrap();
    assert!(!none.status.success());
    assert!(text(&none.stderr).contains("rewardlens model download"), "{}", text(&none.stderr));

    let out = with_home(home.path(), &hub.endpoint()).args(["model", "download", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = &json_lines(&out)[0];
    assert_eq!(summary["fetched_bytes"].as_u64().unwrap(), hub.total_bytes());
    let dir = summary["path"].as_str().unwrap().to_string();
    assert!(dir.contains(".cache/huggingface/hub/models--THUDM--ImageReward/snapshots/"), "{dir}");

    let path = with_home(home.path(), &hub.endpoint()).args(["model", "path", "--json"]).output().unwrap();
    let found = &json_lines(&path)[0];
    assert_eq!((found["path"].as_str().unwrap(), found["origin"].as_str().unwrap()), (dir.as_str(), "hub_cache"));

    let score = |extra: &[&str]| {
        let mut cmd = with_home(home.path(), &hub.endpoint());
        cmd.args(["score", "--json", "--no-store", "--no-cache", "--prompt", "a red cube"]).args(extra);
        let out = cmd.arg(fixture("images")).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        json_lines(&out)
            .iter()
            .map(|l| (l["path"].as_str().unwrap().to_string(), l["score"].as_f64().unwrap()))
            .collect::<Vec<_>>()
    };
    let located = score(&[]);
    assert!(!located.is_empty());
    assert_eq!(located, score(&["--model", &fixture("tiny-pt")]));
}

/// A copied fixture library scored against "a red cube"; returns it and the paths best first.
fn scored_library() -> (Library, Vec<String>) {
    let lib = library();
    let out = rewardlens(&[
        "score",
        "--db",
        &lib.db,
        "--model",
        &fixture("tiny-st"),
        "--prompt",
        "a red cube",
        "--json",
        &lib.images,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let best_first = json_lines(&out).iter().map(|l| l["path"].as_str().unwrap().to_string()).collect();
    (lib, best_first)
}

#[test]
fn export_copies_the_best_with_a_manifest_and_never_overwrites() {
    let (lib, best) = scored_library();
    let to = tempfile::tempdir().unwrap();
    let top = Path::new(&best[0]).file_name().unwrap().to_owned();
    std::fs::write(to.path().join(&top), b"mine").unwrap();
    let dest = to.path().display().to_string();
    let args = ["export", "--db", &lib.db, "--prompt", "a red cube", "--top", "3", "--to", &dest, "--json"];
    let out = rewardlens(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["status"] == "exported"), "{lines:?}");
    assert_eq!(lines[0]["path"].as_str().unwrap(), best[0]);
    assert_ne!(lines[0]["exported"].as_str().unwrap(), top.to_str().unwrap(), "a numbered name, not the user's file");
    assert_eq!(std::fs::read(to.path().join(&top)).unwrap(), b"mine");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(to.path().join("manifest.json")).unwrap()).unwrap();
    let images = manifest["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images[0]["reward_prompt"], "a red cube");
    assert_eq!(images[0]["percentile"], 100.0);
    assert!(images[0]["content_hash"].as_str().unwrap().len() == 64);
    let csv = std::fs::read_to_string(to.path().join("manifest.csv")).unwrap();
    assert!(csv.starts_with("source_path,exported_name,"), "{csv}");
    // Again: everything is already there.
    let again = rewardlens(&args);
    let lines = json_lines(&again);
    assert!(lines.iter().all(|l| l["status"] == "already_there"), "{lines:?}");
    assert_eq!(std::fs::read_dir(to.path()).unwrap().count(), 1 + 3 + 2);
}

#[test]
fn cull_lists_then_trashes_the_worst_and_keeps_favorites() {
    let (lib, best) = scored_library();
    let worst = best.last().unwrap().clone();
    let data_home = tempfile::tempdir().unwrap();
    let cull = |extra: &[&str]| {
        let mut cmd = crate::util::rewardlens_command();
        cmd.env("XDG_DATA_HOME", data_home.path());
        cmd.args(["cull", "--db", &lib.db, "--prompt", "a red cube", "--bottom-percent", "20", "--json"]).args(extra);
        cmd.output().unwrap()
    };
    let dry = cull(&["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let listed = json_lines(&dry);
    assert_eq!(listed.len(), best.len().div_ceil(5));
    assert_eq!(listed[0]["path"].as_str().unwrap(), worst);
    assert!(Path::new(&worst).exists(), "a dry run moves nothing");
    let trashed = cull(&["--trash"]);
    assert!(trashed.status.success(), "{}", text(&trashed.stderr));
    let lines = json_lines(&trashed);
    assert_eq!(lines.len(), listed.len());
    assert!(lines.iter().all(|l| l["status"] == "trashed"));
    assert!(!Path::new(&worst).exists());
    let name = Path::new(&worst).file_name().unwrap();
    assert!(data_home.path().join("Trash/files").join(name).exists(), "in the trash, not deleted");
    let list = rewardlens(&["list", "--db", &lib.db, "--json"]);
    assert!(!text(&list.stdout).contains(&worst), "a trashed image leaves the view");
}

#[test]
fn agreement_reports_the_scorers_accuracy_on_the_users_comparisons() {
    use rewardlens::image_file::ContentHash;
    use rewardlens::library::judgments::{NewComparison, Verdict};
    let (lib, best) = scored_library();
    let list = rewardlens(&["list", "--db", &lib.db, "--prompt", "a red cube", "--json"]);
    let hashes: Vec<ContentHash> =
        json_lines(&list).iter().map(|l| ContentHash::parse(l["content_hash"].as_str().unwrap()).unwrap()).collect();
    assert_eq!(hashes.len(), best.len());
    let (top, bottom) = (hashes[0].clone(), hashes[hashes.len() - 1].clone());
    {
        let mut store = rewardlens::library::store::Store::open(Path::new(&lib.db)).unwrap();
        let mut compare = |prompt: &str, first: &ContentHash, second: &ContentHash, verdict| {
            let c = NewComparison {
                prompt: prompt.into(),
                first: first.clone(),
                second: second.clone(),
                verdict,
                model_id: None,
                first_reward: None,
                second_reward: None,
            };
            store.record_comparison(&c).unwrap();
        };
        compare("a red cube", &top, &bottom, Verdict::First); // the scorer agrees
        compare("a red cube", &top, &bottom, Verdict::Second); // it does not
        compare("a red cube", &top, &hashes[1], Verdict::Tie); // skipped
        compare("a blue sphere", &top, &bottom, Verdict::First); // no rewards for this prompt yet
    }
    let out = rewardlens(&["agreement", "--db", &lib.db, "--json", "--by", "prompt"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["group"], serde_json::Value::Null);
    assert_eq!((rows[0]["pairs"].as_u64(), rows[0]["correct"].as_u64()), (Some(2), Some(1)));
    assert_eq!(rows[0]["accuracy"].as_f64(), Some(0.5));
    assert_eq!(rows[0]["ci95"].as_array().unwrap().len(), 2);
    assert!(text(&out.stderr).contains("too few"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("1 pair(s) left out"), "{}", text(&out.stderr));
    // With the model, the unscored pair is scored first and counts.
    let out = rewardlens(&["agreement", "--db", &lib.db, "--json", "--model", &fixture("tiny-st"), "--device", "cpu"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["pairs"].as_u64(), Some(3));
}
