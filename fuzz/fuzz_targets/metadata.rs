//! Fuzzes every metadata parser: whole files (PNG chunks, JPEG segments, WebP/EXIF) and, past the
//! containers' checksums, the text parsers directly with the keys the dispatcher knows.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rewardlens::library::metadata::container::RawMetadata;
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
    match selector % 4 {
        0 => drop(generation_params_from_bytes(Path::new("fuzz.png"), body)),
        1 => drop(generation_params_from_bytes(Path::new("fuzz.jpg"), body)),
        2 => drop(generation_params_from_bytes(Path::new("fuzz.webp"), body)),
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
