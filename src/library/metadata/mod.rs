//! Generation metadata: the prompt and settings a generator wrote into its image.
//!
//! `container` gets the raw text out of PNG/JPEG/WebP files and `.txt` sidecars; one parser per
//! generator turns that text into [`GenerationParams`]; [`read_generation_params`] picks the
//! parser in the detection order that RupertAvery/DiffusionToolkit,
//! zanllp/sd-webui-infinite-image-browsing and LuqP2/Image-MetaHub agree on.

pub mod a1111;
pub mod comfyui;
pub mod container;
pub mod easydiffusion;
pub mod fooocus;
pub mod gradio;
pub mod invokeai;
pub mod novelai;
pub mod stealth;
pub mod swarmui;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use a1111::parse_a1111;
pub use container::{RawMetadata, png_text_chunks, raw_metadata_from_bytes, read_raw_metadata};

/// What a generator recorded about how an image was made; `None` where it recorded nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParams {
    /// Which program wrote it (`"a1111"`, `"comfyui"`, …).
    pub generator: Option<String>,
    /// The positive prompt, verbatim.
    pub prompt: Option<String>,
    /// The negative prompt, verbatim.
    pub negative_prompt: Option<String>,
    /// Checkpoint name.
    pub model: Option<String>,
    /// Checkpoint hash as the generator printed it.
    pub model_hash: Option<String>,
    /// Noise seed.
    pub seed: Option<i64>,
    /// Sampling steps.
    pub steps: Option<u32>,
    /// Sampler name.
    pub sampler: Option<String>,
    /// Schedule type, where recorded separately from the sampler.
    pub scheduler: Option<String>,
    /// Classifier-free guidance scale.
    pub cfg: Option<f64>,
    /// Generation width in pixels.
    pub width: Option<u32>,
    /// Generation height in pixels.
    pub height: Option<u32>,
    /// Every `key: value` setting as written, for what has no field above.
    pub settings: BTreeMap<String, String>,
    /// The metadata text exactly as found, so nothing is lost to parsing.
    pub raw: String,
}

impl GenerationParams {
    /// An empty record naming its generator and keeping the raw text, for parsers to fill in.
    pub fn new(generator: &str, raw: &str) -> Self {
        Self { generator: Some(generator.to_string()), raw: raw.to_string(), ..Self::default() }
    }

    /// Keeps every text or number of a generator's JSON object in `settings`, so what has no
    /// field of its own is still shown and searchable.
    pub fn keep_json_settings(&mut self, map: &serde_json::Map<String, serde_json::Value>) {
        for (k, v) in map {
            if let Some(s) = json_string(v) {
                self.settings.insert(k.clone(), s);
            }
        }
    }

    /// Fills every field still `None` from `other`, so a second source completes the first.
    pub fn fill_missing_from(&mut self, other: &GenerationParams) {
        fn fill<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
        fill(&mut self.prompt, &other.prompt);
        fill(&mut self.negative_prompt, &other.negative_prompt);
        fill(&mut self.model, &other.model);
        fill(&mut self.model_hash, &other.model_hash);
        fill(&mut self.seed, &other.seed);
        fill(&mut self.steps, &other.steps);
        fill(&mut self.sampler, &other.sampler);
        fill(&mut self.scheduler, &other.scheduler);
        fill(&mut self.cfg, &other.cfg);
        fill(&mut self.width, &other.width);
        fill(&mut self.height, &other.height);
    }
}

/// Why metadata could not be read (the image itself may still be fine).
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The image file could not be opened (missing, unreadable).
    #[error(transparent)]
    File(#[from] crate::image_file::ImageFileError),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Reads the generation parameters of an image file; `Ok(None)` when it carries none we know.
pub fn read_generation_params(path: &Path) -> Result<Option<GenerationParams>, MetadataError> {
    let raw = read_raw_metadata(path)?;
    Ok(parse_raw(&raw))
}

/// Like [`read_generation_params`] for a file already in memory, so a scan reads each file once.
pub fn generation_params_from_bytes(path: &Path, bytes: &[u8]) -> Result<Option<GenerationParams>, MetadataError> {
    let raw = raw_metadata_from_bytes(path, bytes)?;
    Ok(parse_raw(&raw))
}

/// Metadata entries that should hold JSON but do not parse (even with NaN/Infinity tolerated),
/// each as a line naming the key and the parser's complaint, so a scan can report damaged metadata
/// instead of silently finding no prompt.
pub fn malformed_metadata(raw: &RawMetadata) -> Vec<String> {
    const JSON_KEYS: [&str; 5] = ["prompt", "workflow", "invokeai_metadata", "sd-metadata", "sui_image_params"];
    raw.entries
        .iter()
        .filter(|(key, text)| JSON_KEYS.contains(&key.as_str()) && text.trim_start().starts_with(['{', '[']))
        .filter_map(|(key, text)| {
            let err = serde_json::from_str::<serde_json::Value>(text).err()?;
            serde_json::from_str::<serde_json::Value>(&replace_bare_non_finite(text))
                .is_err()
                .then(|| format!("malformed `{key}` metadata ({err}); the prompt may be missing"))
        })
        .collect()
}

/// Picks the parser for what a file carries, most specific format first (the order of the module docs).
pub fn parse_raw(raw: &RawMetadata) -> Option<GenerationParams> {
    // Text that may hold any of several formats: PNG `parameters`, EXIF UserComment, JPEG COM.
    let shared_slots = ["parameters", container::USER_COMMENT, container::JPEG_COMMENT, "Comment"];
    for key in shared_slots {
        if let Some(text) = raw.get(key)
            && text.contains("\"sui_image_params\"")
            && let Some(p) = swarmui::parse_swarmui(text)
        {
            return Some(p);
        }
    }
    if let Some(p) = invokeai::parse_invokeai(raw) {
        return Some(p);
    }
    if let Some(p) = novelai::parse_novelai(raw) {
        return Some(p);
    }
    if let Some(p) = raw.get("parameters").and_then(gradio::parse_gradio_json) {
        return Some(p);
    }
    if let Some(p) = fooocus::parse_fooocus(raw) {
        return Some(p);
    }
    let infotext = ["parameters", container::USER_COMMENT, container::JPEG_COMMENT]
        .into_iter()
        .filter_map(|k| raw.get(k))
        .find(|t| a1111::looks_like_infotext(t));
    if let Some(graph) = raw.get("prompt").filter(|t| t.trim_start().starts_with('{'))
        && let Some(mut p) = comfyui::parse_comfyui_prompt(graph)
    {
        // A saver node may also have written A1111 text: its prompt is the one the user meant.
        if let Some(text) = infotext {
            let mut a = a1111::parse_a1111(text);
            drop_placeholders(&mut a, &p);
            a.generator = p.generator.take();
            a.fill_missing_from(&p);
            return Some(a);
        }
        return Some(p);
    }
    if raw.get("prompt").is_none()
        && let Some(p) = raw.get("workflow").and_then(comfyui::parse_comfyui_workflow)
    {
        return Some(p);
    }
    if let Some(p) = easydiffusion::parse_easydiffusion(raw) {
        return Some(p);
    }
    if let Some(text) = infotext {
        return Some(a1111::parse_a1111(text));
    }
    // A sidecar counts only as infotext: any other `.txt` beside an image is the user's notes.
    if let Some(text) = raw.get(container::SIDECAR_TXT).filter(|t| a1111::looks_like_infotext(t)) {
        return Some(a1111::parse_a1111(text));
    }
    // Last resort: a `parameters` chunk that is plain prompt text.
    raw.get("parameters").filter(|t| !t.trim().is_empty() && !t.trim_start().starts_with('{')).map(a1111::parse_a1111)
}

/// Clears what a save node wrote for lack of a value (comfy-image-saver's `unknown` prompts, seed
/// 0, an empty model), so the graph's real values fill them.
fn drop_placeholders(text: &mut GenerationParams, graph: &GenerationParams) {
    let placeholder = |s: &Option<String>| s.as_deref().is_some_and(|s| s.trim().eq_ignore_ascii_case("unknown"));
    if placeholder(&text.prompt) {
        text.prompt = None;
    }
    if placeholder(&text.negative_prompt) {
        text.negative_prompt = None;
    }
    if text.seed == Some(0) && graph.seed.is_some_and(|s| s != 0) {
        text.seed = None;
    }
    if text.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        text.model = None;
    }
}

/// The key images are grouped by prompt under: whitespace runs collapsed to one space, trimmed
/// and lower-cased, so prompts that differ only in spacing or case share a group.
pub fn prompt_group_key(prompt: &str) -> String {
    prompt.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// A size written `WxH` or `W x H`.
fn parse_size(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.split_once('x')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

/// A JSON value as an integer: a number, or a string of digits (seeds beyond 2^53 come quoted).
fn json_i64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
        }
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON value as a count (steps, pixels).
fn json_u32(v: &serde_json::Value) -> Option<u32> {
    json_i64(v).and_then(|i| u32::try_from(i).ok())
}

/// A JSON value as a float: a number or a numeric string.
fn json_f64(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// A JSON value as text: strings as they are, numbers written out.
fn json_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a JSON object, first turning bare `NaN`/`Infinity` (which Python writes) into `null`.
fn parse_json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => serde_json::from_str(&replace_bare_non_finite(text)).ok()?,
    };
    match value {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Replaces `NaN`, `Infinity` and `-Infinity` outside strings with `null`.
fn replace_bare_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        let token = ["-Infinity", "Infinity", "NaN"].into_iter().find(|t| rest.starts_with(t));
        if let Some(t) = token {
            out.push_str("null");
            rest = &rest[t.len()..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_key_merges_trivial_differences() {
        assert_eq!(prompt_group_key("  A Red\tCube\n on  a table "), prompt_group_key("a red cube on a table"));
        assert_eq!(prompt_group_key("ÉCOLE  Straße"), "école straße");
    }

    #[test]
    fn group_key_keeps_different_prompts_apart() {
        assert_ne!(prompt_group_key("a red cube"), prompt_group_key("a red cube."));
        assert_ne!(prompt_group_key("a red cube"), prompt_group_key("a redcube"));
        assert_ne!(prompt_group_key("(cat:1.2)"), prompt_group_key("cat"));
    }

    #[test]
    fn json_with_nan_still_parses() {
        let map = parse_json_object(r#"{"a": NaN, "b": "NaN in text", "c": -Infinity}"#).unwrap();
        assert!(map["a"].is_null() && map["c"].is_null());
        assert_eq!(map["b"], "NaN in text");
    }

    #[test]
    fn big_seeds_keep_every_digit() {
        assert_eq!(json_i64(&serde_json::json!("6952411511246973023")), Some(6952411511246973023));
        assert_eq!(json_i64(&serde_json::json!(1122440447966177u64)), Some(1122440447966177));
        assert_eq!(json_u32(&serde_json::json!(-1)), None);
    }

    #[test]
    fn png_parameters_chunk_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let text = "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 2x2";
        std::fs::write(&path, container::tests::png_with_text(&[("parameters", text)])).unwrap();
        let p = read_generation_params(&path).unwrap().unwrap();
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry"));
        assert_eq!(p.raw, text);
    }

    /// A ComfyUI API graph: base sampler, positive and negative encoders, checkpoint, size, under
    /// node ids `prefix` + number (current ComfyUI flattens subgraphs into ids like `30:6`).
    fn comfy_graph(prefix: &str, extra: &str) -> String {
        format!(
            r#"{{"{prefix}3": {{"class_type": "KSampler", "inputs": {{"seed": 42, "steps": 28, "cfg": 6.5, "sampler_name": "euler", "scheduler": "normal", "positive": ["{prefix}6", 0], "negative": ["{prefix}7", 0], "model": ["{prefix}4", 0], "latent_image": ["{prefix}5", 0]}}}},
            "{prefix}4": {{"class_type": "CheckpointLoaderSimple", "inputs": {{"ckpt_name": "sdxl_base.safetensors"}}}},
            "{prefix}5": {{"class_type": "EmptyLatentImage", "inputs": {{"width": 832, "height": 1216, "batch_size": 1}}}},
            "{prefix}6": {{"class_type": "CLIPTextEncode", "inputs": {{"text": "a fox in the snow, テスト", "clip": ["{prefix}4", 1]}}}},
            "{prefix}7": {{"class_type": "CLIPTextEncode", "inputs": {{"text": "blurry", "clip": ["{prefix}4", 1]}}}},
            "{prefix}9": {{"class_type": "SaveImage", "inputs": {{"images": ["{prefix}8", 0], "filename_prefix": "x"}}}}{extra}}}"#
        )
    }

    fn read(name: &str, bytes: &[u8]) -> GenerationParams {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        read_generation_params(&path).unwrap().unwrap_or_else(|| panic!("{name}: no metadata found"))
    }

    fn assert_fox(p: &GenerationParams) {
        assert_eq!(p.prompt.as_deref(), Some("a fox in the snow, テスト"), "{p:?}");
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry"));
        assert_eq!((p.seed, p.steps, p.cfg), (Some(42), Some(28), Some(6.5)));
        assert_eq!((p.width, p.height), (Some(832), Some(1216)));
    }

    #[test]
    fn stealth_pnginfo_in_a_png_without_text_chunks() {
        use stealth::tests::{gzip, hide, png};
        let text = "a lighthouse, テスト\nNegative prompt: lowres\nSteps: 25, Sampler: Euler, CFG scale: 5, Seed: 747066619, Size: 64x256, Model: wai";
        for (signature, channels) in [("stealth_pngcomp", 4), ("stealth_pnginfo", 4), ("stealth_rgbcomp", 3)] {
            let mut pixels = vec![200u8; 64 * 256 * channels];
            let payload = if signature.ends_with("comp") { gzip(text.as_bytes()) } else { text.as_bytes().to_vec() };
            hide(&mut pixels, 64, 256, channels, signature, &payload);
            let p = read("s.png", &png(&pixels, 64, 256, channels));
            assert_eq!(p.generator.as_deref(), Some("a1111"));
            assert_eq!(p.prompt.as_deref(), Some("a lighthouse, テスト"), "{signature}");
            assert_eq!(p.negative_prompt.as_deref(), Some("lowres"));
            assert_eq!((p.seed, p.steps, p.cfg), (Some(747066619), Some(25), Some(5.0)));
        }
    }

    /// NovelAI V4.5's parameters: `prompt` is the base caption; the characters are apart.
    const NAI_COMMENT: &str = r#"{"prompt": "2girls, dancing", "steps": 23, "height": 1216, "width": 832, "scale": 5.0, "seed": 1234567, "sampler": "k_euler_ancestral", "noise_schedule": "karras", "v4_prompt": {"caption": {"base_caption": "2girls, dancing", "char_captions": [{"char_caption": "girl, red hair", "centers": [{"x": 0.3, "y": 0.5}]}, {"char_caption": "", "centers": [{"x": 0.7, "y": 0.5}]}, {"char_caption": "girl, blue hair", "centers": [{"x": 0.7, "y": 0.5}]}]}, "use_coords": true, "use_order": true}, "v4_negative_prompt": {"caption": {"base_caption": "lowres", "char_captions": [{"char_caption": "", "centers": []}]}}, "uc": "lowres"}"#;

    fn assert_nai(p: &GenerationParams) {
        assert_eq!(p.generator.as_deref(), Some("novelai"));
        assert_eq!(p.prompt.as_deref(), Some("2girls, dancing\ngirl, red hair\ngirl, blue hair"));
        assert_eq!(p.negative_prompt.as_deref(), Some("lowres"));
        assert_eq!((p.seed, p.steps, p.cfg), (Some(1234567), Some(23), Some(5.0)));
        assert_eq!((p.width, p.height), (Some(832), Some(1216)));
    }

    #[test]
    fn novelai_v4_webp_exif_and_png_stealth_json() {
        use container::tests::{exif_block, webp_with_exif};
        let chunks = serde_json::json!({
            "Comment": NAI_COMMENT,
            "Description": "\u{0}\u{0}\u{0}\u{0}2girls, dancing",
            "Generation time": "3.8",
            "Software": "NovelAI",
            "Source": "NovelAI Diffusion V4.5 C02D4F98",
            "Title": "NovelAI generated image",
        })
        .to_string();
        let mut comment = b"ASCII\0\0\0".to_vec();
        comment.extend_from_slice(chunks.as_bytes());
        // NovelAI's EXIF chunk starts straight with the TIFF header (no `Exif\0\0`).
        let exif = exif_block(true, &comment, &[(0x0131, "NovelAI Diffusion V4.5 C02D4F98")]);
        let p = read("nai.webp", &webp_with_exif(&exif));
        assert_nai(&p);
        assert_eq!(p.model.as_deref(), Some("NovelAI Diffusion V4.5 C02D4F98"));

        use stealth::tests::{gzip, hide, png};
        let mut pixels = vec![255u8; 128 * 128 * 4];
        hide(&mut pixels, 128, 128, 4, "stealth_pngcomp", &gzip(chunks.as_bytes()));
        assert_nai(&read("nai.png", &png(&pixels, 128, 128, 4)));
        // A lossless WebP stripped of its EXIF still carries the copy in its pixels.
        let mut webp = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
            .encode(&pixels, 128, 128, image::ExtendedColorType::Rgba8)
            .unwrap();
        assert_nai(&read("stripped.webp", &webp));
    }

    #[test]
    fn comfyui_graphs_in_exif_as_save_nodes_write_them() {
        use container::tests::{exif_block, jpeg_with_segments, webp_with_exif};
        let graph = comfy_graph("", "");
        let workflow = r#"{"nodes": [], "links": []}"#;
        let jpeg = |tiff: Vec<u8>| {
            let mut app1 = b"Exif\0\0".to_vec();
            app1.extend(tiff);
            jpeg_with_segments(&[(0xE1, app1)])
        };
        // SaveImageExtended: `Prompt: ` on Make, `Workflow: ` on ImageDescription.
        let tags = [(0x010F, format!("Prompt: {graph}")), (0x010E, format!("Workflow: {workflow}"))];
        let tags: Vec<(u16, &str)> = tags.iter().map(|(t, s)| (*t, s.as_str())).collect();
        let p = read("extended.webp", &webp_with_exif(&exif_block(true, &[], &tags)));
        assert_eq!(p.generator.as_deref(), Some("comfyui"));
        assert_fox(&p);
        // ComfyUI's own animated WebP: `prompt:` on Model, `workflow:` on Make.
        let tags = [(0x0110, format!("prompt:{graph}")), (0x010F, format!("workflow:{workflow}"))];
        let tags: Vec<(u16, &str)> = tags.iter().map(|(t, s)| (*t, s.as_str())).collect();
        assert_fox(&read("core.webp", &webp_with_exif(&exif_block(true, &[], &tags))));
        // A JSON UserComment in IFD0, no charset header (Save Image Plus, older SaveImageExtended).
        let both = format!(r#"{{"prompt": {graph}, "workflow": {workflow}}}"#);
        assert_fox(&read("plus.jpg", &jpeg(exif_block(false, &[], &[(0x9286, &both)]))));
        // The same in the Exif sub-IFD with the graphs as JSON strings.
        let strings = serde_json::json!({ "prompt": graph, "workflow": workflow }).to_string();
        let mut comment = b"ASCII\0\0\0".to_vec();
        comment.extend_from_slice(strings.as_bytes());
        assert_fox(&read("strings.webp", &webp_with_exif(&exif_block(false, &comment, &[]))));
    }

    #[test]
    fn a_civitai_jpeg_with_a_subgraph_api_graph_and_extra_keys() {
        use container::tests::{exif_block, jpeg_with_segments, unicode_comment};
        let extra = r#", "extra": {"airs": ["urn:air:sdxl:checkpoint:civitai:1@2"]}, "extraMetadata": "{\"prompt\": \"a fox\", \"steps\": 28}""#;
        let graph = comfy_graph("30:", extra);
        // Civitai: a little-endian TIFF whose UNICODE comment is big-endian UTF-16.
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(exif_block(false, &unicode_comment(&graph, true), &[(0x0131, "56c0ca36-0000 ")]));
        let p = read("civitai.jpg", &jpeg_with_segments(&[(0xE1, app1)]));
        assert_eq!(p.generator.as_deref(), Some("comfyui"));
        assert_fox(&p);
        assert_eq!(p.model.as_deref(), Some("sdxl_base.safetensors"));
    }

    #[test]
    fn a_saver_nodes_placeholders_give_way_to_the_graph_and_cfg_scale_reads_in_any_case() {
        let text = "unknown\nNegative prompt: unknown\nSteps: 28, Sampler: euler_simple, CFG Scale: 6.5, Seed: 0, Size: 832x1216, Model hash: 217daae812, Model: sdxl_base, Version: ComfyUI";
        let graph = comfy_graph("", "");
        let p = read("saver.png", &container::tests::png_with_text(&[("parameters", text), ("prompt", &graph)]));
        assert_eq!(p.generator.as_deref(), Some("comfyui"));
        assert_fox(&p);
        assert_eq!(p.model.as_deref(), Some("sdxl_base"));
        assert_eq!(p.sampler.as_deref(), Some("euler_simple"));
    }

    #[test]
    fn utf8_in_a_text_chunk_is_not_mojibake() {
        // Stability Matrix and others write raw UTF-8 into tEXt, which the PNG spec says is Latin-1.
        let mut png = container::tests::png_with_text(&[]);
        let text = "1girl, テスト\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 2x2";
        let mut data = b"parameters\0".to_vec();
        data.extend_from_slice(text.as_bytes());
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"tEXt");
        chunk.extend_from_slice(&data);
        chunk.extend_from_slice(&[0, 0, 0, 0]);
        png.splice(33..33, chunk);
        assert_eq!(read("u.png", &png).prompt.as_deref(), Some("1girl, テスト"));
    }

    #[test]
    fn a1111_jpeg_user_comment_end_to_end() {
        use container::tests::{exif_block, jpeg_with_segments, unicode_comment};
        let text =
            "a duck テスト\nNegative prompt: mono\nSteps: 15, Sampler: UniPC, CFG scale: 5, Seed: 2, Size: 512x400";
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(exif_block(true, &unicode_comment(text, true), &[]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        std::fs::write(&path, jpeg_with_segments(&[(0xE1, app1)])).unwrap();
        let p = read_generation_params(&path).unwrap().unwrap();
        assert_eq!((p.prompt.as_deref(), p.negative_prompt.as_deref()), (Some("a duck テスト"), Some("mono")));
        assert_eq!((p.width, p.height, p.seed), (Some(512), Some(400), Some(2)));
    }

    #[test]
    fn comfyui_and_swarmui_webp_exif_end_to_end() {
        use container::tests::{exif_block, unicode_comment, webp_with_exif};
        let graph = r#"prompt:{"3":{"class_type":"KSampler","inputs":{"seed":5,"positive":["6",0],"negative":["7",0]}},"6":{"class_type":"CLIPTextEncode","inputs":{"text":"a webp fox"}},"7":{"class_type":"CLIPTextEncode","inputs":{"text":"blur"}}}"#;
        let dir = tempfile::tempdir().unwrap();
        let comfy = dir.path().join("comfy.webp");
        std::fs::write(&comfy, webp_with_exif(&exif_block(false, b"", &[(0x0110, graph), (0x010F, "workflow:{}")])))
            .unwrap();
        let p = read_generation_params(&comfy).unwrap().unwrap();
        assert_eq!(
            (p.generator.as_deref(), p.prompt.as_deref(), p.seed),
            (Some("comfyui"), Some("a webp fox"), Some(5))
        );
        let swarm = dir.path().join("swarm.webp");
        let json = r#"{"sui_image_params": {"prompt": "a swarm cat", "seed": 1}}"#;
        std::fs::write(&swarm, webp_with_exif(&exif_block(false, &unicode_comment(json, false), &[]))).unwrap();
        let p = read_generation_params(&swarm).unwrap().unwrap();
        assert_eq!((p.generator.as_deref(), p.prompt.as_deref()), (Some("swarmui"), Some("a swarm cat")));
    }

    #[test]
    fn every_png_format_is_dispatched_to_its_parser() {
        type Chunks<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Chunks, &str, &str)] = &[
            (&[("parameters", "{\"sui_image_params\": {\"prompt\": \"s\"}}")], "swarmui", "s"),
            (&[("invokeai_metadata", "{\"positive_prompt\": \"i3\"}")], "invokeai", "i3"),
            (&[("sd-metadata", "{\"image\": {\"prompt\": \"i2 [neg]\"}}"), ("Dream", "\"x\" -s 1")], "invokeai", "i2"),
            (&[("Dream", "\"i1 [neg]\" -s 5")], "invokeai", "i1"),
            (&[("Description", "n"), ("Software", "NovelAI"), ("Comment", "{\"uc\": \"u\"}")], "novelai", "n"),
            (
                &[("parameters", "{\"prompt\": \"f\", \"guidance_scale\": 4}"), ("fooocus_scheme", "fooocus")],
                "fooocus",
                "f",
            ),
            (
                &[("prompt", "e"), ("num_inference_steps", "20"), ("use_stable_diffusion_model", "m")],
                "easydiffusion",
                "e",
            ),
            (&[("parameters", "plain prompt only")], "a1111", "plain prompt only"),
        ];
        for (chunks, generator, prompt) in cases {
            let mut raw = RawMetadata::default();
            for (k, v) in *chunks {
                raw.push(k, v);
            }
            let p = parse_raw(&raw).unwrap();
            assert_eq!((p.generator.as_deref(), p.prompt.as_deref()), (Some(*generator), Some(*prompt)), "{chunks:?}");
        }
        let mut notes = RawMetadata::default();
        notes.push(container::SIDECAR_TXT, "my notes about this picture");
        assert_eq!(parse_raw(&notes), None);
    }

    #[test]
    fn every_prefix_of_every_format_parses_without_panic() {
        let samples = [
            "a cat, テスト\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x768, Lora: \"a: 1\"",
            r#"{"sui_image_params": {"prompt": "a \u00e9 cat", "negativeprompt": "dog", "seed": 1, "steps": 20, "cfgscale": 7.0}}"#,
            r#"{"3": {"class_type": "KSampler", "inputs": {"seed": 1, "positive": ["6", 0], "negative": ["7", 0], "model": ["4", 0], "latent_image": ["5", 0]}}, "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m"}}, "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 8, "height": 8}}, "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x"}}, "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "y"}}}"#,
            r#"{"nodes": [{"id": 3, "type": "KSampler", "widgets_values": [1, "fixed", 20, 8, "euler", "normal", 1], "inputs": [{"name": "positive", "link": 4}]}, {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["t"]}], "links": [[4, 6, 0, 3, 1, "CONDITIONING"]]}"#,
            r#"{"positive_prompt": "p", "model": {"name": "m"}, "seed": 3, "cfg_scale": 5}"#,
            r#"{"model_weights": "w", "image": {"prompt": [{"prompt": "a [b]", "weight": 1}], "seed": 1}}"#,
            r#""a [b]" -s 50 -S 1 -W 512 -H 512 -C 7.5 -A k_lms"#,
            r#"{"prompt": "f", "guidance_scale": 4, "resolution": "(768, 1280)", "seed": "123"}"#,
            r#"{"uc": "u", "scale": 5, "v4_prompt": {"caption": {"base_caption": "c"}}}"#,
        ];
        let keys = [
            "parameters",
            "prompt",
            "workflow",
            "invokeai_metadata",
            "sd-metadata",
            "Dream",
            "Comment",
            container::USER_COMMENT,
        ];
        for sample in samples {
            for (cut, _) in sample.char_indices() {
                for key in keys {
                    let mut raw = RawMetadata::default();
                    raw.push(key, &sample[..cut]);
                    raw.push("Software", "NovelAI");
                    raw.push("fooocus_scheme", "fooocus");
                    let _ = parse_raw(&raw);
                }
            }
        }
    }

    #[test]
    fn non_image_has_no_params() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        std::fs::write(&path, b"not an image").unwrap();
        assert_eq!(read_generation_params(&path).unwrap(), None);
    }

    #[test]
    fn comfy_graph_with_a1111_saver_text_prefers_the_text() {
        let mut raw = RawMetadata::default();
        raw.push("prompt", r#"{"3":{"class_type":"KSampler","inputs":{"seed":5,"steps":9,"positive":["6",0]}},"6":{"class_type":"CLIPTextEncode","inputs":{"text":"graph text"}}}"#);
        raw.push("parameters", "saver text\nSteps: 9, Sampler: Euler, CFG scale: 7, Seed: 5");
        let p = parse_raw(&raw).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("saver text"));
        assert_eq!(p.generator.as_deref(), Some("comfyui"));
    }

    /// Real files written by each generator, compared with their `expected.json`. The samples are
    /// not in the repository, so the test runs only when asked for, and fails loudly when they are
    /// absent instead of passing unseen.
    #[test]
    #[ignore = "needs ../shared/samples/generators (not in the repository); run with --ignored"]
    fn real_generator_samples_match_expected() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples/generators");
        let text = std::fs::read_to_string(dir.join("expected.json")).unwrap_or_else(|e| {
            panic!("generator samples are absent: cannot read {}: {e}", dir.join("expected.json").display())
        });
        let expected: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let mut mismatches = Vec::new();
        for e in &expected {
            let file = e["file"].as_str().unwrap();
            let p = read_generation_params(&dir.join(file)).unwrap().unwrap_or_default();
            let empty_is_null = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) if s.is_empty() => serde_json::Value::Null,
                other => other.clone(),
            };
            let got = serde_json::json!({
                "prompt": p.prompt, "negative_prompt": p.negative_prompt, "model": p.model, "seed": p.seed,
                "steps": p.steps, "sampler": p.sampler, "cfg": p.cfg, "width": p.width, "height": p.height,
            });
            for (key, value) in got.as_object().unwrap() {
                let want = empty_is_null(&e[key]);
                let same = match (&want, value) {
                    (serde_json::Value::Number(a), serde_json::Value::Number(b)) => a.as_f64() == b.as_f64(),
                    (a, b) => a == b,
                };
                if !same {
                    mismatches.push(format!("{file}: {key}: want {want}, got {value}"));
                }
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
        // SwarmUI's own ComfyUI graph, read on its own, lands on the same prompt.
        let swarm = read_raw_metadata(&dir.join("swarmui_png.png")).unwrap();
        let graph = comfyui::parse_comfyui_prompt(swarm.get("prompt").unwrap()).unwrap();
        let want = expected.iter().find(|e| e["file"] == "swarmui_png.png").unwrap();
        assert_eq!(graph.prompt.as_deref(), want["prompt"].as_str());
        assert_eq!(graph.negative_prompt.as_deref(), want["negative_prompt"].as_str().map(str::trim_end));
        assert_eq!(graph.seed, want["seed"].as_i64());
    }
}
