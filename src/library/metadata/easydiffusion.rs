//! Easy Diffusion (easydiffusion/easydiffusion): one PNG text chunk per field (`prompt`,
//! `num_inference_steps`, …, or capitalised variants), or the same keys as JSON in a JPEG's
//! EXIF UserComment.

use super::container::{RawMetadata, USER_COMMENT};
use super::{GenerationParams, json_string, parse_json_object};

/// Keys that only Easy Diffusion writes, so a lone `prompt` chunk (ComfyUI) is not taken for it.
const MARKERS: &[&str] = &[
    "use_stable_diffusion_model",
    "num_inference_steps",
    "Stable Diffusion model",
    "guidance_scale",
    "Guidance Scale",
];

/// Parses Easy Diffusion's fields from PNG chunks or UserComment JSON.
pub fn parse_easydiffusion(raw: &RawMetadata) -> Option<GenerationParams> {
    if MARKERS.iter().any(|k| raw.get(k).is_some()) {
        let raw_text: Vec<String> = raw.entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        return Some(from_fields(|k| raw.get(k).map(str::to_string), &raw_text.join("\n")));
    }
    let text = raw.get(USER_COMMENT)?;
    let map = parse_json_object(text)?;
    if !MARKERS.iter().any(|k| map.contains_key(*k)) {
        return None;
    }
    Some(from_fields(|k| map.get(k).and_then(json_string), text))
}

fn from_fields(get: impl Fn(&str) -> Option<String>, raw: &str) -> GenerationParams {
    let first = |keys: &[&str]| keys.iter().find_map(|k| get(k));
    let number = |keys: &[&str]| first(keys).and_then(|s| s.trim().parse::<f64>().ok()).filter(|f| f.is_finite());
    let mut p = GenerationParams::new("easydiffusion", raw);
    p.prompt = first(&["prompt", "Prompt"]).filter(|s| !s.trim().is_empty());
    p.negative_prompt = first(&["negative_prompt", "Negative Prompt"]).filter(|s| !s.trim().is_empty());
    p.model = first(&["use_stable_diffusion_model", "Stable Diffusion model"]);
    p.seed = first(&["seed", "Seed"]).and_then(|s| s.trim().parse().ok());
    p.steps = first(&["num_inference_steps", "Steps"]).and_then(|s| s.trim().parse().ok());
    p.cfg = number(&["guidance_scale", "Guidance Scale"]);
    p.sampler = first(&["sampler_name", "Sampler"]);
    p.width = first(&["width", "Width"]).and_then(|s| s.trim().parse().ok());
    p.height = first(&["height", "Height"]).and_then(|s| s.trim().parse().ok());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_chunks_per_field() {
        let mut raw = RawMetadata::default();
        for (k, v) in [
            ("prompt", "a castle"),
            ("negative_prompt", "fog"),
            ("seed", "42"),
            ("use_stable_diffusion_model", "sd-v1-4"),
            ("sampler_name", "euler_a"),
            ("width", "512"),
            ("height", "768"),
            ("num_inference_steps", "25"),
            ("guidance_scale", "7.5"),
        ] {
            raw.push(k, v);
        }
        let p = parse_easydiffusion(&raw).unwrap();
        assert_eq!((p.prompt.as_deref(), p.negative_prompt.as_deref()), (Some("a castle"), Some("fog")));
        assert_eq!((p.seed, p.steps, p.cfg, p.width, p.height), (Some(42), Some(25), Some(7.5), Some(512), Some(768)));
        assert_eq!((p.model.as_deref(), p.sampler.as_deref()), (Some("sd-v1-4"), Some("euler_a")));
    }

    #[test]
    fn capitalised_json_in_user_comment() {
        let mut raw = RawMetadata::default();
        raw.push(
            USER_COMMENT,
            r#"{"Prompt": "a dog", "Seed": 7, "Stable Diffusion model": "m", "Steps": 20, "Guidance Scale": 6}"#,
        );
        let p = parse_easydiffusion(&raw).unwrap();
        assert_eq!((p.prompt.as_deref(), p.seed, p.steps, p.cfg), (Some("a dog"), Some(7), Some(20), Some(6.0)));
    }

    #[test]
    fn comfy_prompt_chunk_and_junk_are_not_easy_diffusion() {
        let mut raw = RawMetadata::default();
        raw.push("prompt", "{\"3\": {}}");
        assert_eq!(parse_easydiffusion(&raw), None);
        raw.push(USER_COMMENT, "{not json");
        assert_eq!(parse_easydiffusion(&raw), None);
        let mut junk = RawMetadata::default();
        junk.push("num_inference_steps", "many");
        junk.push("seed", "-");
        let p = parse_easydiffusion(&junk).unwrap();
        assert_eq!((p.steps, p.seed, p.prompt), (None, None, None));
    }
}
