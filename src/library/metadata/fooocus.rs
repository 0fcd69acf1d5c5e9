//! Fooocus and its forks (lllyasviel/Fooocus `modules/meta_parser.py`): PNG `parameters` JSON with `fooocus_scheme`,
//! EXIF UserComment JSON, RuinedFooocus `parameters`, FooocusMRE `Comment`.

use super::container::{RawMetadata, USER_COMMENT};
use super::{GenerationParams, json_f64, json_i64, json_string, json_u32, parse_json_object};

/// Keys only Fooocus-family JSON carries, so other JSON is not mistaken for it.
const FOOOCUS_KEYS: &[&str] =
    &["full_prompt", "guidance_scale", "base_model", "performance", "sharpness", "real_prompt", "base_model_name"];

/// Parses Fooocus JSON from whichever chunk holds it; `None` for the `a1111` scheme (that
/// text is A1111 infotext) and for JSON of other generators.
pub fn parse_fooocus(raw: &RawMetadata) -> Option<GenerationParams> {
    if raw.get("fooocus_scheme").is_some_and(|s| s.trim() == "a1111") {
        return None;
    }
    ["parameters", USER_COMMENT, "Comment"].into_iter().filter_map(|k| raw.get(k)).find_map(parse_fooocus_json)
}

/// Parses one Fooocus-family JSON object.
pub fn parse_fooocus_json(text: &str) -> Option<GenerationParams> {
    let m = parse_json_object(text)?;
    let ruined = m.get("software").and_then(|s| s.as_str()).is_some_and(|s| s.contains("RuinedFooocus"));
    if !ruined && !FOOOCUS_KEYS.iter().any(|k| m.contains_key(*k)) {
        return None;
    }
    let first = |keys: &[&str]| keys.iter().find_map(|k| m.get(*k));
    let mut p = GenerationParams::new(if ruined { "ruinedfooocus" } else { "fooocus" }, text);
    p.prompt = first(&["prompt", "Prompt"]).and_then(json_string).filter(|s| !s.trim().is_empty());
    p.negative_prompt = first(&["negative_prompt", "Negative"]).and_then(json_string).filter(|s| !s.trim().is_empty());
    p.model = first(&["base_model", "base_model_name"]).and_then(json_string);
    p.model_hash = m.get("base_model_hash").and_then(json_string);
    p.seed = m.get("seed").and_then(json_i64);
    p.steps = m.get("steps").and_then(json_u32);
    p.cfg = first(&["guidance_scale", "cfg"]).and_then(json_f64);
    p.sampler = first(&["sampler", "sampler_name"]).and_then(json_string);
    p.scheduler = m.get("scheduler").and_then(json_string);
    p.width = m.get("width").and_then(json_u32);
    p.height = m.get("height").and_then(json_u32);
    if let Some((w, h)) = m.get("resolution").and_then(|r| r.as_str()).and_then(parse_resolution) {
        p.width = Some(w);
        p.height = Some(h);
    }
    p.keep_json_settings(&m);
    Some(p)
}

/// Fooocus writes the size as the text `"(1152, 896)"`.
fn parse_resolution(text: &str) -> Option<(u32, u32)> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (w, h) = inner.split_once(',')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOOOCUS: &str = r#"{"base_model": "juggernautXL_v8Rundiffusion", "base_model_hash": "aeb7e9e689", "full_prompt": ["a smiling goldfish, styled"], "guidance_scale": 4, "negative_prompt": "", "performance": "Speed", "prompt": "a smiling goldfish", "resolution": "(768, 1280)", "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "seed": "6952411511246973023", "steps": 30, "version": "Fooocus v2.4.3"}"#;

    #[test]
    fn fooocus_scheme_json() {
        let mut raw = RawMetadata::default();
        raw.push("parameters", FOOOCUS);
        raw.push("fooocus_scheme", "fooocus");
        let p = parse_fooocus(&raw).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a smiling goldfish"));
        assert_eq!(p.negative_prompt, None);
        assert_eq!(p.seed, Some(6952411511246973023));
        assert_eq!((p.steps, p.cfg, p.width, p.height), (Some(30), Some(4.0), Some(768), Some(1280)));
        assert_eq!(p.model.as_deref(), Some("juggernautXL_v8Rundiffusion"));
        assert_eq!(p.sampler.as_deref(), Some("dpmpp_2m_sde_gpu"));
    }

    #[test]
    fn user_comment_and_ruined_fooocus() {
        let mut raw = RawMetadata::default();
        raw.push(USER_COMMENT, FOOOCUS);
        assert_eq!(parse_fooocus(&raw).unwrap().steps, Some(30));
        let ruined = r#"{"Prompt": "a cat", "Negative": "dog", "cfg": 7.5, "sampler_name": "euler", "base_model_name": "sdxl.safetensors", "software": "RuinedFooocus"}"#;
        let p = parse_fooocus_json(ruined).unwrap();
        assert_eq!((p.prompt.as_deref(), p.negative_prompt.as_deref(), p.cfg), (Some("a cat"), Some("dog"), Some(7.5)));
        assert_eq!(p.generator.as_deref(), Some("ruinedfooocus"));
    }

    #[test]
    fn other_json_and_a1111_scheme_are_not_fooocus() {
        assert_eq!(parse_fooocus_json(r#"{"prompt": "x"}"#), None);
        assert_eq!(parse_fooocus_json("{broken"), None);
        let mut raw = RawMetadata::default();
        raw.push("parameters", FOOOCUS);
        raw.push("fooocus_scheme", "a1111");
        assert_eq!(parse_fooocus(&raw), None);
        let p = parse_fooocus_json(r#"{"performance": "Speed", "resolution": "(x, 3)", "seed": [1]}"#).unwrap();
        assert_eq!((p.width, p.seed, p.prompt), (None, None, None));
    }
}
