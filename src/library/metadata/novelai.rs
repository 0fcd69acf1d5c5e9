//! NovelAI: PNG `Description` (the prompt), `Software: NovelAI`, `Source` (the model) and a
//! `Comment` JSON of settings with `uc` as the negative prompt (read the same way by
//! RupertAvery/DiffusionToolkit and zanllp/sd-webui-infinite-image-browsing).

use super::container::RawMetadata;
use super::{GenerationParams, json_f64, json_i64, json_string, json_u32, parse_json_object};

/// Parses NovelAI's chunks; `None` unless `Software` says NovelAI or the `Comment` JSON has
/// NovelAI's own keys beside a `Description`.
pub fn parse_novelai(raw: &RawMetadata) -> Option<GenerationParams> {
    let comment = raw.get("Comment").and_then(parse_json_object);
    let says_novelai = raw.get("Software").is_some_and(|s| s.trim() == "NovelAI");
    let looks_novelai = raw.get("Description").is_some()
        && comment
            .as_ref()
            .is_some_and(|c| c.contains_key("uc") && (c.contains_key("scale") || c.contains_key("noise_schedule")));
    if !says_novelai && !looks_novelai {
        return None;
    }
    let mut p = GenerationParams::new("novelai", raw.get("Comment").or(raw.get("Description")).unwrap_or(""));
    let nested = |c: &serde_json::Map<String, serde_json::Value>, key: &str| {
        c.get(key)?.get("caption")?.get("base_caption").and_then(json_string)
    };
    if let Some(c) = &comment {
        let get = |k: &str| c.get(k);
        p.prompt = get("prompt").and_then(json_string).or_else(|| nested(c, "v4_prompt"));
        p.negative_prompt = get("uc").and_then(json_string).or_else(|| nested(c, "v4_negative_prompt"));
        // V4 prompts: the base caption, then one caption per character, each a line (as
        // NovelAI shows them); they are all the text the image was made from.
        for (key, field) in [("v4_prompt", &mut p.prompt), ("v4_negative_prompt", &mut p.negative_prompt)] {
            let characters = character_captions(c, key);
            if !characters.is_empty() {
                let base = field.take().filter(|b| !b.trim().is_empty());
                *field = Some(base.into_iter().chain(characters).collect::<Vec<_>>().join("\n"));
            }
        }
        p.seed = get("seed").and_then(json_i64);
        p.steps = get("steps").and_then(json_u32);
        p.cfg = get("scale").and_then(json_f64);
        p.sampler = get("sampler").and_then(json_string);
        p.scheduler = get("noise_schedule").and_then(json_string);
        p.width = get("width").and_then(json_u32);
        p.height = get("height").and_then(json_u32);
        p.keep_json_settings(c);
    }
    if p.prompt.is_none() {
        p.prompt = raw.get("Description").map(str::to_string);
    }
    p.prompt = p.prompt.filter(|s| !s.trim().is_empty());
    p.negative_prompt = p.negative_prompt.filter(|s| !s.trim().is_empty());
    p.model = raw.get("Source").map(str::to_string);
    Some(p)
}

/// The non-empty character captions of a V4 prompt structure, in order.
fn character_captions(comment: &serde_json::Map<String, serde_json::Value>, key: &str) -> Vec<String> {
    comment
        .get(key)
        .and_then(|v| v.get("caption"))
        .and_then(|c| c.get("char_captions"))
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("char_caption").and_then(json_string))
        .filter(|c| !c.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawMetadata {
        let mut r = RawMetadata::default();
        for (k, v) in pairs {
            r.push(k, v);
        }
        r
    }

    #[test]
    fn v1_description_and_comment() {
        let comment = r#"{"steps": 50, "sampler": "k_euler_ancestral", "seed": 2253955223, "strength": 0.4, "noise": 0.0, "scale": 10.0, "uc": "lowres"}"#;
        let r = raw(&[
            ("Description", "best quality,  cat"),
            ("Software", "NovelAI"),
            ("Source", "Stable Diffusion 1D44365E"),
            ("Comment", comment),
        ]);
        let p = parse_novelai(&r).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("best quality,  cat"));
        assert_eq!(p.negative_prompt.as_deref(), Some("lowres"));
        assert_eq!(p.model.as_deref(), Some("Stable Diffusion 1D44365E"));
        assert_eq!((p.seed, p.steps, p.cfg), (Some(2253955223), Some(50), Some(10.0)));
        assert_eq!(p.raw, comment);
    }

    #[test]
    fn v4_captions() {
        let comment = r#"{"v4_prompt": {"caption": {"base_caption": "a fox", "char_captions": []}}, "v4_negative_prompt": {"caption": {"base_caption": "bad"}}, "width": 832, "height": 1216, "scale": 5.0, "uc": "bad"}"#;
        let p = parse_novelai(&raw(&[("Software", "NovelAI"), ("Comment", comment)])).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a fox"));
        assert_eq!((p.width, p.height), (Some(832), Some(1216)));
    }

    #[test]
    fn not_novelai_or_malformed() {
        assert_eq!(parse_novelai(&raw(&[("Description", "a midjourney prompt --v 6")])), None);
        let p =
            parse_novelai(&raw(&[("Software", "NovelAI"), ("Comment", "{not json"), ("Description", "x")])).unwrap();
        assert_eq!((p.prompt.as_deref(), p.seed), (Some("x"), None));
    }
}
