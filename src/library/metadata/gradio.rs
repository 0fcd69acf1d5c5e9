//! Gradio apps on Hugging Face Spaces (the Animagine XL Spaces and their many clones): a PNG
//! `parameters` chunk holding JSON (`prompt`, `negative_prompt`, `resolution` as `"832 x 1216"`,
//! `guidance_scale`, `num_inference_steps`, `seed`, `sampler`, `Model`, `Model hash`) rather
//! than A1111 text.

use super::{GenerationParams, json_f64, json_i64, json_string, json_u32, parse_json_object};

/// Parses a Space's JSON; `None` for JSON that does not look like one (Fooocus's has other keys).
pub fn parse_gradio_json(text: &str) -> Option<GenerationParams> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let m = parse_json_object(text)?;
    let spacey = m.contains_key("num_inference_steps") || (m.contains_key("Model") && m.contains_key("resolution"));
    let fooocus = ["full_prompt", "performance", "base_model", "fooocus_scheme"].iter().any(|k| m.contains_key(*k));
    if !m.contains_key("prompt") || !spacey || fooocus {
        return None;
    }
    let first = |keys: &[&str]| keys.iter().find_map(|k| m.get(*k));
    let mut p = GenerationParams::new("gradio", text);
    p.prompt = m.get("prompt").and_then(json_string).filter(|s| !s.trim().is_empty());
    p.negative_prompt = m.get("negative_prompt").and_then(json_string).filter(|s| !s.trim().is_empty());
    p.steps = first(&["num_inference_steps", "steps"]).and_then(json_u32);
    p.cfg = first(&["guidance_scale", "cfg_scale", "guidance"]).and_then(json_f64);
    p.seed = m.get("seed").and_then(json_i64);
    p.sampler = first(&["sampler", "scheduler"]).and_then(json_string);
    p.model = first(&["Model", "model"]).and_then(|v| json_string(v).or_else(|| v.get("Model").and_then(json_string)));
    p.model_hash = m.get("Model hash").and_then(json_string);
    let size = m.get("resolution").and_then(|r| r.as_str()).and_then(super::parse_size);
    p.width = size.map(|(w, _)| w).or_else(|| m.get("width").and_then(json_u32));
    p.height = size.map(|(_, h)| h).or_else(|| m.get("height").and_then(json_u32));
    p.keep_json_settings(&m);
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_animagine_space_png_reads_with_its_steps() {
        let text = r#"{"prompt": "1girl, solo, \u30c6\u30b9\u30c8", "negative_prompt": "bad quality, \n", "resolution": "832 x 1216", "guidance_scale": 5.5, "num_inference_steps": 24, "seed": 443800072, "sampler": "DPM++ 2M Karras", "Model": "Animagine XL 4.0", "Model hash": "BDB59BAC77", "use_upscaler": null}"#;
        let p = parse_gradio_json(text).unwrap();
        assert_eq!(p.generator.as_deref(), Some("gradio"));
        assert_eq!(p.prompt.as_deref(), Some("1girl, solo, テスト"));
        assert_eq!(p.negative_prompt.as_deref(), Some("bad quality, \n"));
        assert_eq!((p.steps, p.cfg, p.seed), (Some(24), Some(5.5), Some(443800072)));
        assert_eq!((p.width, p.height), (Some(832), Some(1216)));
        assert_eq!(p.model.as_deref(), Some("Animagine XL 4.0"));
        assert_eq!(p.sampler.as_deref(), Some("DPM++ 2M Karras"));
    }

    #[test]
    fn other_json_is_left_to_its_own_parser() {
        assert!(
            parse_gradio_json(r#"{"prompt": "a", "guidance_scale": 4, "performance": "Speed", "base_model": "x"}"#)
                .is_none()
        );
        assert!(parse_gradio_json(r#"{"prompt": "a"}"#).is_none());
        assert!(parse_gradio_json("a cat\nSteps: 20").is_none());
    }
}
