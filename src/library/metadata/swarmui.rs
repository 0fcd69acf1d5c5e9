//! SwarmUI: JSON `{"sui_image_params": {...}}` in PNG `parameters` or EXIF UserComment
//! (mcmonkeyprojects/SwarmUI `src/Utils/Image.cs`).

use super::{GenerationParams, json_f64, json_i64, json_string, json_u32, parse_json_object};

/// Parses SwarmUI's parameter JSON; `None` when it has no `sui_image_params` object.
pub fn parse_swarmui(text: &str) -> Option<GenerationParams> {
    let root = parse_json_object(text)?;
    let params = root.get("sui_image_params")?.as_object()?;
    let get = |k: &str| params.get(k);
    let mut p = GenerationParams::new("swarmui", text);
    p.prompt = get("prompt").and_then(json_string).filter(|s| !s.trim().is_empty());
    p.negative_prompt = get("negativeprompt").and_then(json_string).filter(|s| !s.trim().is_empty());
    p.model = get("model").and_then(json_string);
    p.seed = get("seed").and_then(json_i64);
    p.steps = get("steps").and_then(json_u32);
    p.cfg = get("cfgscale").and_then(json_f64);
    p.width = get("width").and_then(json_u32);
    p.height = get("height").and_then(json_u32);
    p.sampler = get("sampler").and_then(json_string);
    p.scheduler = get("scheduler").and_then(json_string);
    p.model_hash = root
        .get("sui_models")
        .and_then(|m| m.as_array())
        .and_then(|models| models.iter().find(|m| m.get("param").and_then(|v| v.as_str()) == Some("model")))
        .and_then(|m| m.get("hash"))
        .and_then(json_string);
    p.keep_json_settings(params);
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sui_image_params() {
        let text = r#"{"sui_image_params": {"prompt": "a photo of a cat", "negativeprompt": "dog", "model": "OfficialStableDiffusion/sd_xl_base_1.0", "seed": 1, "steps": 20, "cfgscale": 7.0, "width": 1024, "height": 768, "sampler": "euler", "swarm_version": "0.9.3.1"}, "sui_models": [{"name": "x.safetensors", "param": "model", "hash": "0xd7a9"}]}"#;
        let p = parse_swarmui(text).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a photo of a cat"));
        assert_eq!(p.negative_prompt.as_deref(), Some("dog"));
        assert_eq!(p.model.as_deref(), Some("OfficialStableDiffusion/sd_xl_base_1.0"));
        assert_eq!((p.seed, p.steps, p.cfg, p.width, p.height), (Some(1), Some(20), Some(7.0), Some(1024), Some(768)));
        assert_eq!(p.model_hash.as_deref(), Some("0xd7a9"));
        assert_eq!(p.settings.get("swarm_version").map(String::as_str), Some("0.9.3.1"));
        assert_eq!(p.raw, text);
    }

    #[test]
    fn malformed_is_none_or_partial() {
        assert_eq!(parse_swarmui("{\"sui_image_params\": "), None);
        assert_eq!(parse_swarmui("{\"sui_image_params\": 3}"), None);
        assert_eq!(parse_swarmui("[]"), None);
        let p = parse_swarmui(r#"{"sui_image_params": {"prompt": 5, "seed": "x", "steps": -3}}"#).unwrap();
        assert_eq!((p.prompt.as_deref(), p.seed, p.steps), (Some("5"), None, None));
    }
}
