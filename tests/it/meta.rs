//! `rewardlens meta` end to end: files written in each generator's layout into a temp folder.

use std::path::Path;
use std::process::Output;

fn rewardlens(args: &[&str]) -> Output {
    crate::util::rewardlens_command().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A 2×2 PNG with the given text chunks (iTXt where the text is not Latin-1, as Pillow does).
fn write_png(path: &Path, chunks: &[(&str, &str)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 2, 2);
    enc.set_color(png::ColorType::Rgb);
    for (k, v) in chunks {
        if v.chars().all(|c| (c as u32) < 256) {
            enc.add_text_chunk(k.to_string(), v.to_string()).unwrap();
        } else {
            enc.add_itxt_chunk(k.to_string(), v.to_string()).unwrap();
        }
    }
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&[0u8; 12]).unwrap();
    w.finish().unwrap();
}

const INFOTEXT: &str = "a red fox in snow, café\nNegative prompt: watermark\n\
    Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, Size: 832x1216, Model: sd_xl_base_1.0";

const COMFY: &str = r#"{"3": {"inputs": {"seed": 1102676403634909, "steps": 20, "cfg": 8.0, "sampler_name": "dpmpp_2m", "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}, "class_type": "KSampler"}, "4": {"inputs": {"ckpt_name": "model.ckpt"}, "class_type": "CheckpointLoaderSimple"}, "5": {"inputs": {"width": 512, "height": 512, "batch_size": 1}, "class_type": "EmptyLatentImage"}, "6": {"inputs": {"text": "猫 on a log", "clip": ["4", 1]}, "class_type": "CLIPTextEncode"}, "7": {"inputs": {"text": "", "clip": ["4", 1]}, "class_type": "CLIPTextEncode"}}"#;

fn write_collection(dir: &Path) {
    write_png(&dir.join("a1111.png"), &[("parameters", INFOTEXT)]);
    write_png(&dir.join("comfy.png"), &[("prompt", COMFY), ("workflow", "{}")]);
    write_png(&dir.join("plain.png"), &[]);
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/zero.png"), b"").unwrap();
}

#[test]
fn json_lines_have_exactly_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    write_collection(dir.path());
    let out = rewardlens(&["meta", "--json", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "the zero-byte file is reported, not listed");
    let keys = [
        "path",
        "generator",
        "prompt",
        "negative_prompt",
        "model",
        "seed",
        "steps",
        "sampler",
        "cfg",
        "width",
        "height",
    ];
    for line in &lines {
        let obj = line.as_object().unwrap();
        assert_eq!(obj.len(), keys.len(), "{line}");
        assert!(keys.iter().all(|k| obj.contains_key(*k)), "{line}");
    }
    let by_name = |name: &str| lines.iter().find(|l| l["path"].as_str().unwrap().ends_with(name)).unwrap();
    let a = by_name("a1111.png");
    assert_eq!(a["generator"], "a1111");
    assert_eq!(a["prompt"], "a red fox in snow, café");
    assert_eq!(a["negative_prompt"], "watermark");
    assert_eq!((a["seed"].as_i64(), a["steps"].as_u64(), a["cfg"].as_f64()), (Some(1234567890), Some(30), Some(7.0)));
    assert_eq!((a["width"].as_u64(), a["height"].as_u64()), (Some(832), Some(1216)));
    assert_eq!(a["model"], "sd_xl_base_1.0");
    let c = by_name("comfy.png");
    assert_eq!(c["generator"], "comfyui");
    assert_eq!(c["prompt"], "猫 on a log");
    assert!(c["negative_prompt"].is_null());
    assert_eq!(c["seed"].as_i64(), Some(1102676403634909));
    assert_eq!(c["sampler"], "dpmpp_2m");
    let e = by_name("plain.png");
    assert!(e["generator"].is_null() && e["prompt"].is_null() && e["width"].is_null(), "{e}");
    // A zero-byte file is no image: reported once on stderr, not listed as one without metadata.
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("zero.png"), "{stdout}");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| l.contains("zero.png") && l.contains("empty file")).count(), 1, "{stderr}");
}

#[test]
fn readable_blocks_name_each_file() {
    let dir = tempfile::tempdir().unwrap();
    write_collection(dir.path());
    std::fs::write(dir.path().join("plain.txt"), "from a sidecar\nSteps: 5, Sampler: Euler, Seed: 3").unwrap();
    let out = rewardlens(&["meta", dir.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("a1111.png\n  generator: a1111\n  prompt: a red fox in snow, café\n"), "{stdout}");
    assert!(stdout.contains("  size: 832x1216\n"), "{stdout}");
    assert!(stdout.contains("  prompt: 猫 on a log\n"), "{stdout}");
    assert!(stdout.contains("plain.png\n  generator: a1111\n  prompt: from a sidecar\n"), "{stdout}");
    assert!(!stdout.contains("zero.png"), "a zero-byte file is reported, not listed: {stdout}");
}

#[test]
fn missing_paths_are_reported_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write_collection(dir.path());
    let missing = dir.path().join("missing.png");
    let out =
        rewardlens(&["meta", "--json", missing.to_str().unwrap(), dir.path().join("a1111.png").to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("missing.png") && lines[0].contains("No such file"), "{stderr}");
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

#[test]
fn nothing_readable_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = rewardlens(&["meta", dir.path().join("missing.png").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("missing.png"));
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn damaged_files_are_reported_once_each_with_the_scans_checks() {
    let dir = tempfile::tempdir().unwrap();
    write_collection(dir.path());
    for bad in ["truncated.png", "zero.png", "not_an_image.jpg"] {
        std::fs::copy(crate::util::fixtures().join("bad").join(bad), dir.path().join(format!("bad_{bad}"))).unwrap();
    }
    let out = rewardlens(&["meta", "--json", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for (bad, reason) in [
        ("bad_truncated.png", "truncated"),
        ("bad_zero.png", "empty file"),
        ("bad_not_an_image.jpg", "not a PNG, JPEG or WebP"),
    ] {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(bad)).collect();
        assert_eq!(lines.len(), 1, "{bad}: {stderr}");
        assert!(lines[0].contains(reason), "{bad}: {stderr}");
        assert!(!stdout.contains(bad), "{bad} listed as a good file: {stdout}");
    }
    assert_eq!(stdout.lines().count(), 3, "every good file is still listed");
}
