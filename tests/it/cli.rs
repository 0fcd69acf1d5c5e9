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
