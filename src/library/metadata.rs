//! Generation metadata: the prompt and settings a generator wrote into its image.
//!
//! Today: AUTOMATIC1111/Forge/SD.Next `parameters` text in PNG tEXt/zTXt/iTXt chunks.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// What a generator recorded about how an image was made; `None` where it recorded nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerationParams {
    /// Which program wrote it (`"a1111"`, …).
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

/// Why metadata could not be read (the image itself may still be fine).
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The PNG structure before the image data is broken.
    #[error("cannot read PNG metadata of {path}: {reason}")]
    Png {
        /// The file.
        path: std::path::PathBuf,
        /// The decoder's message.
        reason: String,
    },
}

/// Reads the generation parameters of an image file; `Ok(None)` when it carries none we know.
pub fn read_generation_params(path: &Path) -> Result<Option<GenerationParams>, MetadataError> {
    // Opening a FIFO would block until a writer appears: look only at regular files.
    let meta = std::fs::metadata(path).map_err(|source| MetadataError::Io { path: path.to_path_buf(), source })?;
    if !meta.is_file() {
        return Ok(None);
    }
    let file = std::fs::File::open(path).map_err(|source| MetadataError::Io { path: path.to_path_buf(), source })?;
    let mut head = [0u8; 8];
    let is_png = {
        use std::io::Read;
        let mut f = &file;
        f.read(&mut head).map(|n| n == 8 && head == *b"\x89PNG\r\n\x1a\n").unwrap_or(false)
    };
    if !is_png {
        return Ok(None);
    }
    let file = std::fs::File::open(path).map_err(|source| MetadataError::Io { path: path.to_path_buf(), source })?;
    let texts = png_text_chunks(std::io::BufReader::new(file))
        .map_err(|reason| MetadataError::Png { path: path.to_path_buf(), reason })?;
    Ok(texts.iter().find(|(k, _)| k == "parameters").map(|(_, text)| parse_a1111(text)))
}

/// All text chunks before the image data, as (keyword, text), decoded per their encoding
/// (tEXt/zTXt Latin-1, iTXt UTF-8).
pub fn png_text_chunks<R: std::io::BufRead + std::io::Seek>(reader: R) -> Result<Vec<(String, String)>, String> {
    let decoder = png::Decoder::new(reader);
    let reader = decoder.read_info().map_err(|e| e.to_string())?;
    let info = reader.info();
    let mut out = Vec::new();
    for chunk in &info.uncompressed_latin1_text {
        out.push((chunk.keyword.clone(), chunk.text.clone()));
    }
    for chunk in &info.compressed_latin1_text {
        if let Ok(text) = chunk.get_text() {
            out.push((chunk.keyword.clone(), text));
        }
    }
    for chunk in &info.utf8_text {
        if let Ok(text) = chunk.get_text() {
            out.push((chunk.keyword.clone(), text));
        }
    }
    Ok(out)
}

/// Parses AUTOMATIC1111's infotext: prompt lines, an optional `Negative prompt:` section, and a
/// last line of `Key: value` settings starting with `Steps:`.
pub fn parse_a1111(text: &str) -> GenerationParams {
    let normalised = text.replace("\r\n", "\n");
    let mut lines: Vec<&str> = normalised.split('\n').collect();
    let mut settings_line = None;
    if let Some(pos) = lines.iter().rposition(|l| l.trim_start().starts_with("Steps: ")) {
        settings_line = Some(lines[pos].trim().to_string());
        lines.truncate(pos);
    }
    let neg_start = lines.iter().position(|l| l.starts_with("Negative prompt:"));
    let (prompt_lines, negative) = match neg_start {
        Some(i) => {
            let mut neg: Vec<&str> = lines[i..].to_vec();
            neg[0] = neg[0].trim_start_matches("Negative prompt:").trim_start();
            (&lines[..i], Some(neg.join("\n").trim().to_string()))
        }
        None => (&lines[..], None),
    };
    let prompt = prompt_lines.join("\n").trim().to_string();
    let settings = settings_line.as_deref().map(parse_settings).unwrap_or_default();
    let get = |k: &str| settings.get(k).cloned();
    let size = get("Size").and_then(|s| {
        let (w, h) = s.split_once('x')?;
        Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
    });
    GenerationParams {
        generator: Some("a1111".to_string()),
        prompt: Some(prompt).filter(|p| !p.is_empty()),
        negative_prompt: negative.filter(|n| !n.is_empty()),
        model: get("Model"),
        model_hash: get("Model hash"),
        seed: get("Seed").and_then(|s| s.parse().ok()),
        steps: get("Steps").and_then(|s| s.parse().ok()),
        sampler: get("Sampler"),
        scheduler: get("Schedule type"),
        cfg: get("CFG scale").and_then(|s| s.parse().ok()),
        width: size.map(|(w, _)| w),
        height: size.map(|(_, h)| h),
        settings,
        raw: text.to_string(),
    }
}

/// Splits `Key: value, Key2: "quoted, value", …` respecting double quotes.
fn parse_settings(line: &str) -> BTreeMap<String, String> {
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
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            out.insert(k.trim().to_string(), v.to_string());
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
    fn a1111_prompt_negative_and_settings() {
        let p = parse_a1111(INFOTEXT);
        assert_eq!(p.prompt.as_deref(), Some("a red cube on a blue table, studio light\nsecond line"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry, lowres"));
        assert_eq!((p.steps, p.seed, p.cfg), (Some(20), Some(1234), Some(7.0)));
        assert_eq!((p.width, p.height), (Some(256), Some(320)));
        assert_eq!(p.sampler.as_deref(), Some("Euler a"));
        assert_eq!(p.scheduler.as_deref(), Some("Karras"));
        assert_eq!(p.model.as_deref(), Some("tinymodel"));
        assert_eq!(p.settings.get("Lora hashes").map(String::as_str), Some("a: 1, b: 2"));
        assert_eq!(p.raw, INFOTEXT);
    }

    #[test]
    fn a1111_prompt_only() {
        let p = parse_a1111("just a prompt");
        assert_eq!(p.prompt.as_deref(), Some("just a prompt"));
        assert_eq!(p.negative_prompt, None);
        assert_eq!(p.steps, None);
    }

    #[test]
    fn png_parameters_chunk_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 2, 2);
        enc.set_color(png::ColorType::Rgb);
        enc.add_text_chunk("parameters".into(), INFOTEXT.into()).unwrap();
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0u8; 12]).unwrap();
        w.finish().unwrap();
        let p = read_generation_params(&path).unwrap().unwrap();
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry, lowres"));
    }

    #[test]
    fn non_png_has_no_params() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        std::fs::write(&path, b"not an image").unwrap();
        assert_eq!(read_generation_params(&path).unwrap(), None);
    }
}
