//! AUTOMATIC1111 / Forge / SD.Next "infotext": prompt lines, an optional `Negative prompt:`
//! section and a last line of `Key: value` settings (AUTOMATIC1111/stable-diffusion-webui
//! `modules/processing.py` `create_infotext`, read back by `modules/infotext_utils.py`).

use std::collections::BTreeMap;

use super::GenerationParams;

const NEGATIVE: &str = "Negative prompt:";

/// Whether text ends in an infotext settings line, so it is A1111 text and not some other format.
pub fn looks_like_infotext(text: &str) -> bool {
    let normalised = text.replace("\r\n", "\n");
    !normalised.trim_start().starts_with('{')
        && settings_line_index(&normalised.split('\n').collect::<Vec<_>>()).is_some()
}

/// Parses infotext. The prompt and negative prompt are kept verbatim (A1111 writes
/// `{prompt}\nNegative prompt: {negative}\n{settings}`, so trailing spaces and newlines inside
/// them are the user's).
pub fn parse_a1111(text: &str) -> GenerationParams {
    let normalised = text.replace("\r\n", "\n");
    let mut lines: Vec<&str> = normalised.split('\n').collect();
    let mut settings = BTreeMap::new();
    if let Some(pos) = settings_line_index(&lines) {
        settings = parse_settings(lines[pos].trim());
        lines.truncate(pos);
    }
    let neg_start = lines.iter().position(|l| l.starts_with(NEGATIVE));
    let (prompt, negative) = match neg_start {
        Some(i) => {
            let first = lines[i].trim_start_matches(NEGATIVE);
            let first = first.strip_prefix(' ').unwrap_or(first);
            let rest = std::iter::once(first).chain(lines[i + 1..].iter().copied());
            (lines[..i].join("\n"), Some(rest.collect::<Vec<_>>().join("\n")))
        }
        None => (lines.join("\n"), None),
    };
    // Keys as A1111 writes them; save nodes vary the case (`CFG Scale`).
    let get = |k: &str| {
        settings
            .get(k)
            .or_else(|| settings.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v))
            .cloned()
    };
    let size = get("Size").as_deref().and_then(super::parse_size);
    GenerationParams {
        generator: Some("a1111".to_string()),
        prompt: Some(prompt).filter(|p| !p.trim().is_empty()),
        negative_prompt: negative.filter(|n| !n.trim().is_empty()),
        model: get("Model"),
        model_hash: get("Model hash"),
        seed: get("Seed").and_then(|s| s.parse().ok()),
        steps: get("Steps").and_then(|s| s.parse().ok()),
        sampler: get("Sampler"),
        scheduler: get("Schedule type"),
        cfg: get("CFG scale").and_then(|s| s.parse().ok()).filter(|c: &f64| c.is_finite()),
        width: size.map(|(w, _)| w),
        height: size.map(|(_, h)| h),
        settings,
        raw: text.to_string(),
    }
}

/// The settings line: the last non-empty line when it holds at least three `key: value` pairs
/// (A1111's own rule), else a line starting with `Steps: `.
fn settings_line_index(lines: &[&str]) -> Option<usize> {
    let last = lines.iter().rposition(|l| !l.trim().is_empty())?;
    let pairs = parse_settings(lines[last].trim());
    let well_formed = pairs.keys().filter(|k| is_settings_key(k)).count();
    if well_formed >= 3 {
        return Some(last);
    }
    lines.iter().rposition(|l| l.trim_start().starts_with("Steps: "))
}

/// Keys are words and spaces (`Model hash`, `CFG scale`).
fn is_settings_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ' ' || c == '-')
}

/// Splits `Key: value, Key2: "quoted, value", …` respecting double quotes.
pub(super) fn parse_settings(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut parts = Vec::new();
    let (mut current, mut quoted, mut escaped) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                current.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    for part in parts {
        if let Some((k, v)) = part.split_once(':') {
            let v = v.trim();
            let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                // A1111 JSON-quotes values holding `,` `:` or newlines.
                Some(inner) => {
                    serde_json::from_str::<String>(&format!("\"{inner}\"")).unwrap_or_else(|_| inner.to_string())
                }
                None => v.to_string(),
            };
            out.insert(k.trim().to_string(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFOTEXT: &str = "a red cube on a blue table, studio light\nsecond line\nNegative prompt: blurry, lowres\n\
        Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 256x320, \
        Model hash: abcdef1234, Model: tinymodel, Lora hashes: \"a: 1, b: 2\"";

    #[test]
    fn prompt_negative_and_settings() {
        let p = parse_a1111(INFOTEXT);
        assert_eq!(p.prompt.as_deref(), Some("a red cube on a blue table, studio light\nsecond line"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry, lowres"));
        assert_eq!((p.steps, p.seed, p.cfg), (Some(20), Some(1234), Some(7.0)));
        assert_eq!((p.width, p.height), (Some(256), Some(320)));
        assert_eq!(p.sampler.as_deref(), Some("Euler a"));
        assert_eq!(p.scheduler.as_deref(), Some("Karras"));
        assert_eq!(p.model.as_deref(), Some("tinymodel"));
        assert_eq!(p.model_hash.as_deref(), Some("abcdef1234"));
        assert_eq!(p.settings.get("Lora hashes").map(String::as_str), Some("a: 1, b: 2"));
        assert_eq!(p.raw, INFOTEXT);
        assert!(looks_like_infotext(INFOTEXT));
    }

    #[test]
    fn trailing_spaces_and_newlines_in_prompts_are_kept() {
        let text =
            "masterpiece, \n1girl\n\nNegative prompt: bad, \n\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 5.5, Seed: 1";
        let p = parse_a1111(text);
        assert_eq!(p.prompt.as_deref(), Some("masterpiece, \n1girl\n"));
        assert_eq!(p.negative_prompt.as_deref(), Some("bad, \n"));
        assert_eq!(p.cfg, Some(5.5));
    }

    #[test]
    fn prompt_only() {
        let p = parse_a1111("just a prompt");
        assert_eq!(p.prompt.as_deref(), Some("just a prompt"));
        assert_eq!(p.negative_prompt, None);
        assert_eq!(p.steps, None);
        assert!(!looks_like_infotext("just a prompt: with a colon"));
    }

    #[test]
    fn malformed_settings_do_not_panic() {
        for text in [
            "",
            "\n\n",
            "Negative prompt:",
            "Steps: x, Seed: 99999999999999999999999, Size: 12",
            "a\nSteps: \"unterminated, CFG scale: NaN, Size: x",
        ] {
            let p = parse_a1111(text);
            assert_eq!(p.raw, text);
            assert_eq!(p.seed, None);
            assert_eq!(p.cfg, None);
        }
    }

    #[test]
    fn crlf_and_quoted_values() {
        let p = parse_a1111("cat\r\nNegative prompt: dog\r\nSteps: 5, Sampler: Euler, Template: \"a, b\\nc\", Seed: 3");
        assert_eq!(p.prompt.as_deref(), Some("cat"));
        assert_eq!(p.negative_prompt.as_deref(), Some("dog"));
        assert_eq!(p.settings.get("Template").map(String::as_str), Some("a, b\nc"));
        assert_eq!(p.seed, Some(3));
    }
}
