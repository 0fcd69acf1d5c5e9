//! InvokeAI (invoke-ai/InvokeAI), every variant: v3–v5 `invokeai_metadata` flat JSON, v2
//! `sd-metadata` JSON, and v1 `Dream` command lines (negative prompt in `[…]`).

use super::container::RawMetadata;
use super::{GenerationParams, json_f64, json_i64, json_string, json_u32, parse_json_object};

/// Parses whichever InvokeAI chunk is present, newest format first.
pub fn parse_invokeai(raw: &RawMetadata) -> Option<GenerationParams> {
    raw.get("invokeai_metadata")
        .and_then(parse_invokeai_metadata)
        .or_else(|| raw.get("sd-metadata").and_then(parse_sd_metadata))
        .or_else(|| raw.get("Dream").and_then(parse_dream))
}

/// InvokeAI 3–5 `invokeai_metadata`: `positive_prompt`, `negative_prompt`, `cfg_scale`,
/// `scheduler`, `model` (an object with `name`/`model_name`, or a string).
pub fn parse_invokeai_metadata(text: &str) -> Option<GenerationParams> {
    let m = parse_json_object(text)?;
    let get = |k: &str| m.get(k);
    let mut p = GenerationParams::new("invokeai", text);
    p.prompt = get("positive_prompt").and_then(json_string).filter(|s| !s.trim().is_empty());
    p.negative_prompt = get("negative_prompt").and_then(json_string).filter(|s| !s.trim().is_empty());
    p.seed = get("seed").and_then(json_i64);
    p.steps = get("steps").and_then(json_u32);
    p.cfg = get("cfg_scale").and_then(json_f64);
    p.width = get("width").and_then(json_u32);
    p.height = get("height").and_then(json_u32);
    // InvokeAI calls its sampler the scheduler.
    p.sampler = get("scheduler").and_then(json_string);
    match get("model") {
        Some(serde_json::Value::Object(model)) => {
            p.model = model.get("name").or(model.get("model_name")).and_then(json_string);
            p.model_hash = model.get("hash").and_then(json_string);
        }
        Some(other) => p.model = json_string(other),
        None => {}
    }
    p.keep_json_settings(&m);
    Some(p)
}

/// InvokeAI 2 `sd-metadata`: `model_weights`, `model_hash`, and `image` with `prompt` (a string
/// or a list of `{prompt, weight}`), `steps`, `cfg_scale`, `seed`, `sampler`, size.
pub fn parse_sd_metadata(text: &str) -> Option<GenerationParams> {
    let m = parse_json_object(text)?;
    let image = m.get("image")?.as_object()?;
    let get = |k: &str| image.get(k);
    let mut p = GenerationParams::new("invokeai", text);
    let prompt = match get("prompt") {
        Some(serde_json::Value::Array(parts)) => {
            let texts: Vec<String> = parts.iter().filter_map(|x| x.get("prompt").and_then(json_string)).collect();
            // Several weighted prompts are a blend, not one prompt.
            (texts.len() == 1).then(|| texts.into_iter().next()).flatten()
        }
        Some(other) => json_string(other),
        None => None,
    };
    if let Some(prompt) = prompt {
        let (positive, negative) = split_bracketed_negative(&prompt);
        p.prompt = Some(positive).filter(|s| !s.is_empty());
        p.negative_prompt = negative;
    }
    p.model = m.get("model_weights").and_then(json_string);
    p.model_hash = m.get("model_hash").and_then(json_string);
    p.seed = get("seed").and_then(json_i64);
    p.steps = get("steps").and_then(json_u32);
    p.cfg = get("cfg_scale").and_then(json_f64);
    p.width = get("width").and_then(json_u32);
    p.height = get("height").and_then(json_u32);
    p.sampler = get("sampler").and_then(json_string);
    Some(p)
}

/// InvokeAI 1 `Dream`: `"prompt [negative]" -s 50 -S 1618033988 -W 512 -H 512 -C 7.5 -A k_lms`.
pub fn parse_dream(text: &str) -> Option<GenerationParams> {
    let trimmed = text.trim();
    let (prompt, flags) = if let Some(rest) = trimmed.strip_prefix('"') {
        // The closing quote is the first one followed by the end or a flag.
        let close = rest
            .char_indices()
            .filter(|&(i, c)| c == '"' && (rest[i + 1..].is_empty() || rest[i + 1..].starts_with(" -")))
            .map(|(i, _)| i)
            .next()?;
        (&rest[..close], &rest[close + 1..])
    } else {
        match trimmed.find(" -") {
            Some(i) => (&trimmed[..i], &trimmed[i..]),
            None => (trimmed, ""),
        }
    };
    let mut p = GenerationParams::new("invokeai", text);
    let (positive, negative) = split_bracketed_negative(prompt);
    p.prompt = Some(positive).filter(|s| !s.is_empty());
    p.negative_prompt = negative;
    let tokens: Vec<&str> = flags.split_whitespace().collect();
    for pair in tokens.windows(2) {
        let value = pair[1];
        match pair[0] {
            "-s" | "--steps" => p.steps = value.parse().ok(),
            "-S" | "--seed" => p.seed = value.parse().ok(),
            "-W" | "--width" => p.width = value.parse().ok(),
            "-H" | "--height" => p.height = value.parse().ok(),
            "-C" | "--cfg_scale" => p.cfg = value.parse().ok().filter(|c: &f64| c.is_finite()),
            "-A" | "--sampler" => p.sampler = Some(value.to_string()),
            "-m" | "--model" => p.model = Some(value.to_string()),
            _ => {}
        }
    }
    Some(p)
}

/// Splits InvokeAI's `prompt [negative] more [negative 2]` into the prompt without the bracketed
/// parts (trimmed) and the bracketed parts joined by `, `.
fn split_bracketed_negative(prompt: &str) -> (String, Option<String>) {
    let mut positive = String::new();
    let mut negatives = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in prompt.chars() {
        match c {
            '[' => {
                if depth > 0 {
                    current.push(c);
                }
                depth += 1;
            }
            ']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    negatives.push(std::mem::take(&mut current).trim().to_string());
                } else {
                    current.push(c);
                }
            }
            _ if depth > 0 => current.push(c),
            _ => positive.push(c),
        }
    }
    // An unclosed bracket is prompt text after all.
    if depth > 0 {
        positive.push('[');
        positive.push_str(&current);
    }
    let negative = negatives.into_iter().filter(|n| !n.is_empty()).collect::<Vec<_>>().join(", ");
    (positive.trim().to_string(), Some(negative).filter(|n| !n.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_metadata() {
        let text = r#"{"generation_mode":"sdxl_txt2img","positive_prompt":"a robot reading","negative_prompt":"blurry","width":1184,"height":888,"seed":591741300,"cfg_scale":5.0,"steps":30,"scheduler":"dpmpp_2m_sde","model":{"key":"k","hash":"blake3:89","name":"juggernautXL","base":"sdxl"}}"#;
        let p = parse_invokeai_metadata(text).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a robot reading"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry"));
        assert_eq!(
            (p.seed, p.steps, p.cfg, p.width, p.height),
            (Some(591741300), Some(30), Some(5.0), Some(1184), Some(888))
        );
        assert_eq!(p.sampler.as_deref(), Some("dpmpp_2m_sde"));
        assert_eq!(p.model.as_deref(), Some("juggernautXL"));
        assert_eq!(p.model_hash.as_deref(), Some("blake3:89"));
        let old = parse_invokeai_metadata(r#"{"positive_prompt":"x","model":{"model_name":"m3"}}"#).unwrap();
        assert_eq!(old.model.as_deref(), Some("m3"));
    }

    #[test]
    fn v2_sd_metadata_list_and_string_prompt() {
        let text = r#"{"model_weights": "stable-diffusion-1.5", "model_hash": "cc6c", "app_id": "invoke-ai/InvokeAI", "image": {"prompt": [{"prompt": "a lonely robot [blurry, text]", "weight": 1.0}], "steps": 50, "cfg_scale": 7.5, "height": 512, "width": 640, "seed": 1618033988, "sampler": "k_lms"}}"#;
        let p = parse_sd_metadata(text).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a lonely robot"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry, text"));
        assert_eq!(
            (p.steps, p.cfg, p.width, p.height, p.seed),
            (Some(50), Some(7.5), Some(640), Some(512), Some(1618033988))
        );
        assert_eq!(p.model.as_deref(), Some("stable-diffusion-1.5"));
        let s = parse_sd_metadata(r#"{"image": {"prompt": "plain"}}"#).unwrap();
        assert_eq!((s.prompt.as_deref(), s.negative_prompt), (Some("plain"), None));
    }

    #[test]
    fn v1_dream() {
        let p =
            parse_dream(r#""a lonely robot [blurry, text]" -s 50 -S 1618033988 -W 512 -H 768 -C 7.5 -A k_lms -G 0.9"#)
                .unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a lonely robot"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry, text"));
        assert_eq!(
            (p.steps, p.seed, p.width, p.height, p.cfg),
            (Some(50), Some(1618033988), Some(512), Some(768), Some(7.5))
        );
        assert_eq!(p.sampler.as_deref(), Some("k_lms"));
        let q = parse_dream(r#""he said "hi" [x]" -s 5"#).unwrap();
        assert_eq!(q.prompt.as_deref(), Some(r#"he said "hi""#));
    }

    #[test]
    fn malformed_is_none_or_partial() {
        assert_eq!(parse_invokeai_metadata("{"), None);
        assert_eq!(parse_sd_metadata(r#"{"image": 3}"#), None);
        assert_eq!(parse_dream("\"unterminated -s 5"), None);
        let p = parse_dream("bare prompt [unclosed -s x -S").unwrap();
        assert_eq!((p.prompt.as_deref(), p.steps), (Some("bare prompt [unclosed"), None));
        assert_eq!(parse_invokeai(&RawMetadata::default()), None);
    }
}
