//! Fuzzes every metadata parser: whole files (PNG chunks, JPEG segments, WebP/EXIF) and, past the
//! containers' checksums, the text parsers directly with the keys the dispatcher knows, the
//! stealth-pnginfo bit reader on raw pixels, and the JSON unpacking of EXIF comments.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rewardlens::library::metadata::container::{RawMetadata, unpack_json_text};
use rewardlens::library::metadata::stealth::{Pixels, stealth_text};
use rewardlens::library::metadata::{generation_params_from_bytes, parse_raw, prompt_group_key};

/// Keys under which generators store their text.
const KEYS: &[&str] = &[
    "parameters",
    "prompt",
    "workflow",
    "Comment",
    "Description",
    "Software",
    "Source",
    "invokeai_metadata",
    "sd-metadata",
    "Dream",
    "sui_image_params",
    "fooocus_scheme",
    "UserComment",
    "jpeg_comment",
    "sidecar_txt",
    "exif_software",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 6 {
        0 => drop(generation_params_from_bytes(Path::new("fuzz.png"), body)),
        1 => drop(generation_params_from_bytes(Path::new("fuzz.jpg"), body)),
        2 => drop(generation_params_from_bytes(Path::new("fuzz.webp"), body)),
        3 => {
            // Width, height and channels from the first bytes; the rest are the rows present.
            let [w, h, c, pixels @ ..] = body else { return };
            let (width, channels) = (usize::from(*w) + 1, 3 + usize::from(c & 1));
            let rows = pixels.len() / (width * channels);
            let height = rows.max(usize::from(*h) + 1);
            let data = &pixels[..rows * width * channels];
            let _ = stealth_text(&Pixels { data, width, rows, height, channels });
        }
        4 => {
            for (key, text) in unpack_json_text(&String::from_utf8_lossy(body)) {
                let mut raw = RawMetadata::default();
                raw.push(&key, &text);
                let _ = parse_raw(&raw);
            }
        }
        _ => {
            // Up to three (key, text) entries separated by NUL bytes, each key picked by a byte.
            let mut raw = RawMetadata::default();
            for part in body.split(|&b| b == 0).take(3) {
                let Some((&key, text)) = part.split_first() else { continue };
                let text = String::from_utf8_lossy(text);
                raw.push(KEYS[usize::from(key) % KEYS.len()], &text);
                let _ = prompt_group_key(&text);
            }
            let _ = parse_raw(&raw);
        }
    }
});
